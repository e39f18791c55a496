"""A small client for the workshop hub: REST API, form login, and running code in a kernel.

Used by the load test (deploy/hub_load.py) and the isolation tests (tests/test_hub.py).
Needs tornado (in the hub's environment and in the lab's) and the standard library.
All traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import datetime, timezone
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urljoin, urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

AsyncHTTPClient.configure(None, max_clients=64)


class HubError(RuntimeError):
    pass


class Hub:
    """The hub at ``url`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, url: str):
        if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"loopback only: {url}")
        self.url = url.rstrip("/")
        self.http = AsyncHTTPClient()

    # ---- plain requests ----------------------------------------------------------------------
    async def request(self, method: str, path: str, *, token=None, body=None, cookies=None,
                      headers=None, timeout: float = 60.0):
        """``(status, headers, body bytes)``; never raises on an HTTP error status."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"token {token}"
        if cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if isinstance(body, (dict, list)):
            body, h["Content-Type"] = json.dumps(body), "application/json"
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = ""
        req = HTTPRequest(self.url + path, method=method, headers=h, body=body, follow_redirects=False,
                          request_timeout=timeout, allow_nonstandard_methods=True)
        try:
            resp = await self.http.fetch(req, raise_error=False)
        except HTTPClientError as exc:     # pragma: no cover - raise_error=False returns instead
            resp = exc.response
        if resp.code == 599:
            raise HubError(f"{method} {path}: {resp.error}")
        return resp.code, resp.headers, resp.body or b""

    async def api(self, method: str, path: str, *, token, body=None, ok=(200, 201, 202, 204)):
        code, _, raw = await self.request(method, "/hub/api" + path, token=token, body=body)
        if code not in ok:
            raise HubError(f"{method} /hub/api{path}: HTTP {code} {raw[:200]!r}")
        return json.loads(raw) if raw else None

    # ---- users, tokens, servers ----------------------------------------------------------------
    async def user_token(self, service_token: str, name: str, note: str = "load test") -> str:
        got = await self.api("POST", f"/users/{name}/tokens", token=service_token,
                             body={"note": note, "expires_in": 3600})
        return got["token"]

    async def start_server(self, name: str, token: str, *, timeout: float = 300.0) -> float:
        """Start ``name``'s server and wait until it answers through the proxy; returns seconds."""
        t0 = time.monotonic()
        await self.api("POST", f"/users/{name}/server", token=token, ok=(201, 202, 400))
        while True:
            user = await self.api("GET", f"/users/{name}", token=token)
            server = (user.get("servers") or {}).get("")
            if server and server.get("ready"):
                code, _, _ = await self.request("GET", f"/user/{name}/api/status", token=token)
                if code == 200:
                    return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise HubError(f"server of {name} not ready after {timeout:.0f} s")
            await asyncio.sleep(0.5)

    async def stop_server(self, name: str, token: str, *, timeout: float = 120.0) -> None:
        await self.api("DELETE", f"/users/{name}/server", token=token, ok=(202, 204, 400, 404))
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            user = await self.api("GET", f"/users/{name}", token=token, ok=(200, 404))
            if not user or not user.get("servers"):
                return
            await asyncio.sleep(0.5)
        raise HubError(f"server of {name} still running after {timeout:.0f} s")

    # ---- a browser-like login (the workshop authenticator's form) ----------------------------
    @staticmethod
    def _absorb(cookies: dict, headers) -> None:
        for raw in headers.get_list("Set-Cookie"):
            for key, morsel in SimpleCookie(raw).items():
                cookies[key] = morsel.value

    async def login(self, name: str, password: str, workshop_code: str = "") -> dict:
        """Sign in through /hub/login as a browser would; returns the cookies (raises if refused)."""
        cookies: dict = {}
        code, headers, body = await self.request("GET", "/hub/login")
        self._absorb(cookies, headers)
        m = re.search(rb'name="_xsrf" value="([^"]+)"', body)
        if code != 200 or not m:
            raise HubError(f"GET /hub/login: HTTP {code}, no _xsrf field")
        form = urlencode({"username": name, "password": password, "workshop_code": workshop_code,
                          "_xsrf": m.group(1).decode()})
        code, headers, _ = await self.request("POST", "/hub/login", body=form, cookies=cookies,
                                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        self._absorb(cookies, headers)
        if code != 302 or "jupyterhub-hub-login" not in cookies:
            raise HubError(f"login of {name} refused (HTTP {code})")
        return cookies

    async def browse(self, path: str, cookies: dict, *, max_redirects: int = 10):
        """GET ``path`` with ``cookies``, following redirects on this hub (the OAuth dance).

        Returns ``(final status, final path)``; ``cookies`` gains what the servers set.
        """
        for _ in range(max_redirects):
            code, headers, _ = await self.request("GET", path, cookies=cookies)
            self._absorb(cookies, headers)
            if code not in (301, 302, 303, 307) or "Location" not in headers:
                return code, path
            target = urlparse(urljoin(self.url + path, headers["Location"]))
            if f"{target.scheme}://{target.netloc}" != self.url:
                raise HubError(f"redirect off the hub: {headers['Location']}")
            path = target.path + (f"?{target.query}" if target.query else "")
        raise HubError(f"too many redirects from {path}")

    # ---- kernels -------------------------------------------------------------------------------
    async def kernel(self, name: str, token: str, *, path: str = "") -> "Kernel":
        code, _, raw = await self.request("POST", f"/user/{name}/api/kernels", token=token,
                                          body={"name": "python3", "path": path})
        if code != 201:
            raise HubError(f"start kernel for {name}: HTTP {code} {raw[:200]!r}")
        kid = json.loads(raw)["id"]
        ws_url = self.url.replace("http", "ws", 1) + f"/user/{name}/api/kernels/{kid}/channels"
        ws = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}),
                                     max_message_size=256 * 1024 * 1024)
        return Kernel(self, name, token, kid, ws)


class Kernel:
    """One kernel of one learner's server, driven over its websocket (Jupyter messaging 5.3)."""

    def __init__(self, hub: Hub, name: str, token: str, kid: str, ws):
        self.hub, self.name, self.token, self.id, self.ws = hub, name, token, kid, ws
        self.session = uuid.uuid4().hex

    async def execute(self, code: str, *, timeout: float = 600.0) -> dict:
        """Run ``code``; returns ``{"status", "stdout", "error"}`` once the kernel is idle again."""
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                       "session": self.session, "version": "5.3",
                       "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, status, error, idle = [], None, None, False
        deadline = time.monotonic() + timeout
        while status is None or not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HubError(f"cell did not finish within {timeout:.0f} s")
            raw = await asyncio.wait_for(self.ws.read_message(), timeout=left)
            if raw is None:
                raise HubError("the kernel's websocket closed")
            if isinstance(raw, bytes):
                continue   # binary frames carry widget buffers: not needed here
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg.get("content", {})
            if kind == "stream" and content.get("name") == "stdout":
                out.append(content.get("text", ""))
            elif kind == "error":
                error = f"{content.get('ename')}: {content.get('evalue')}"
            elif kind == "execute_reply":
                status = content.get("status")
                if status == "error" and error is None:
                    error = f"{content.get('ename')}: {content.get('evalue')}"
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        return {"status": status, "stdout": "".join(out), "error": error}

    async def shutdown(self) -> None:
        self.ws.close()
        await self.hub.request("DELETE", f"/user/{self.name}/api/kernels/{self.id}", token=self.token)
