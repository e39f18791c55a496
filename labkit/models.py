"""Small models the lessons train in seconds, and the functions to use them.

- :func:`mlp` and :func:`small_cnn` build a :class:`Net`: ``features`` (everything up to the
  penultimate layer) followed by a linear ``head``; :func:`embed` returns the features.
- :func:`train` trains a model on a :class:`~labkit.types.Dataset`, seeded, on CUDA when
  available. Its ``aggregate=`` slot decides how per-sample gradients are combined into one
  step: ``None`` is the ordinary mean; a training-time defence (e.g. clipping + noise)
  plugs in there.
- :func:`predict_proba`, :func:`predict`, :func:`embed` work on numpy arrays.
- Victims that do not train from scratch: :func:`transfer_victim` (a linear head on a frozen
  :func:`pretrained_extractor`) and :func:`fine_tune` (a deployed model trained further).

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from .compute import limit_threads
from .optim import Adam
from .rng import as_rng, seed_for  # noqa: F401  (seed_for: part of the models API)
from .types import Dataset

limit_threads()  # one thread unless LABKIT_THREADS says otherwise (see labkit.compute)

__all__ = ["Net", "mlp", "small_cnn", "MODELS", "train", "predict_proba", "predict", "embed",
           "default_device", "seed_for", "pretrained_extractor", "transfer_victim", "fine_tune",
           "BagOfWordsClassifier", "text_classifier", "AnswerGenerator", "answer_generator"]


class Net(nn.Module):
    """``head(features(x))``: a feature extractor and a linear classifier on top."""

    def __init__(self, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x):
        return self.head(self.features(x))


def mlp(image_shape, n_classes: int, *, hidden: int = 64) -> Net:
    """Flatten -> Linear(hidden) -> ReLU -> Linear(n_classes). The default model."""
    d = int(np.prod(image_shape))
    return Net(nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU()), nn.Linear(hidden, n_classes))


def small_cnn(image_shape, n_classes: int, *, width: int = 16, hidden: int = 64) -> Net:
    """Two 3x3 conv blocks (the second pools to 4x4), then Linear(hidden) -> ReLU -> head."""
    c = image_shape[0]
    feats = nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(2 * width * 16, hidden), nn.ReLU())
    return Net(feats, nn.Linear(hidden, n_classes))


#: Model name -> builder ``(image_shape, n_classes) -> Net``.
MODELS = {"mlp": mlp, "cnn": small_cnn}


def default_device() -> torch.device:
    """CUDA when available, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _init_(model: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise every Linear/Conv, Embedding and GRU layer from ``gen`` (PyTorch's
    default schemes).

    PyTorch's default init draws from the global generator; drawing from our own keeps the
    library free of global seeding and makes ``seed`` the only source of randomness.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=gen)  # == kaiming_uniform(a=sqrt(5))
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=gen)
            elif isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
                m.weight.normal_(0.0, 1.0, generator=gen)                  # PyTorch's default
            elif isinstance(m, nn.GRU):
                bound = 1.0 / math.sqrt(m.hidden_size)
                for w in m.parameters():
                    w.uniform_(-bound, bound, generator=gen)


def _as_tensor(X: np.ndarray, device) -> torch.Tensor:
    return torch.tensor(np.asarray(X, np.float32), device=device)


def train(data: Dataset, *, model: Union[str, Callable[..., nn.Module], nn.Module] = "mlp",
          epochs: int = 100, lr: float = 0.01, batch_size: int = 128, weight_decay: float = 0.0,
          seed: int = 0, aggregate: Optional[Callable] = None, sample_weight=None,
          augment: bool = False, adversarial_eps: float = 0.0,
          progress: bool = False, device=None) -> nn.Module:
    """Train a classifier on ``data`` with Adam and cross-entropy.

    Parameters
    ----------
    data : Dataset
    model : {"mlp", "cnn"}, callable or nn.Module
        A name from :data:`MODELS`, a builder ``(image_shape, n_classes) -> nn.Module``, or
        a module to continue training (fine-tuning; it is trained in place).
    epochs, lr, batch_size, weight_decay : training settings.
        The defaults train the MLP on digits in about 1.5 s on 2 CPU cores, long enough
        for it to fit (memorise) its training labels, as large models do in practice:
        that is what lets poisoned labels do damage.
    seed : int
        The only source of randomness: initialisation and mini-batch order.
    aggregate : callable, optional
        How per-sample gradients become one update. ``None``: the usual mean gradient
        of the batch. Otherwise ``aggregate(grads, gen) -> grads``, where ``grads`` maps
        each parameter name to a tensor shaped ``(batch, *param.shape)`` (per-sample
        gradients from ``torch.func``) and the result maps names to ``param.shape``;
        ``gen`` is a ``torch.Generator`` for noise.
    sample_weight : array, shape (n,), optional
        Per-row loss weights (e.g. 0 to drop a row without re-indexing).
    augment : bool
        Robust training: every mini-batch is randomly shifted by up to one pixel in each
        direction (zero fill) and gets Gaussian pixel noise (sd 0.05), drawn from ``seed``.
    adversarial_eps : float
        Robust training: when > 0, each mini-batch is replaced by its FGSM adversarial
        version within an L-inf ball of this radius (Goodfellow et al. 2015,
        arXiv:1412.6572), computed against the current model.
    progress : bool
        Show a tqdm progress bar over epochs.
    device : str or torch.device, optional
        Defaults to :func:`default_device`.

    Returns
    -------
    nn.Module
        The trained model, in eval mode, on ``device``.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    if len(data) == 0:
        raise ValueError("cannot train on an empty dataset")
    if not 0 <= adversarial_eps <= 1:
        raise ValueError(f"adversarial_eps must be in [0, 1], got {adversarial_eps}")
    device = torch.device(device) if device is not None else default_device()
    gen = torch.Generator().manual_seed(int(seed))
    if isinstance(model, nn.Module):
        net = model
    else:
        if isinstance(model, str) and model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        build = MODELS[model] if isinstance(model, str) else model
        net = build(data.image_shape, data.n_classes)
        _init_(net, gen)
    net = net.to(device)
    X = _as_tensor(data.X, device)
    y = torch.tensor(data.y, device=device)
    w = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight, np.float32), device=device)
    opt = Adam(net.parameters(), lr=lr, weight_decay=weight_decay)  # == torch.optim.Adam, no torch._dynamo
    step = _per_sample_step(net, aggregate) if aggregate is not None else None
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm
        epochs_iter = tqdm(epochs_iter, desc="training", unit="epoch", leave=False)
    net.train()
    for _ in epochs_iter:
        order = torch.randperm(len(y), generator=gen).to(device)
        for start in range(0, len(y), batch_size):
            b = order[start:start + batch_size]
            xb = _augment(X[b], gen) if augment else X[b]
            if adversarial_eps > 0:
                xb = _fgsm(net, xb, y[b], adversarial_eps)
            opt.zero_grad()
            if step is None:
                losses = nn.functional.cross_entropy(net(xb), y[b], reduction="none")
                loss = (losses * w[b]).sum() / w[b].sum().clamp_min(1e-12) if w is not None else losses.mean()
                loss.backward()
            else:
                step(xb, y[b], gen)
            opt.step()
    net.eval()
    return net


def _augment(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to one pixel (zero fill) plus N(0, 0.05) noise, clipped to [0, 1]."""
    n, _, h, w = xb.shape
    shifts = torch.randint(-1, 2, (n, 2), generator=gen)
    padded = nn.functional.pad(xb, (1, 1, 1, 1))
    rows = (torch.arange(h)[None, :] + 1 - shifts[:, :1]).to(xb.device)     # (n, h)
    cols = (torch.arange(w)[None, :] + 1 - shifts[:, 1:]).to(xb.device)     # (n, w)
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(xb.shape[1])[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    noise = torch.randn(out.shape, generator=gen).to(xb.device) * 0.05
    return (out + noise).clamp(0, 1)


def _fgsm(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size ``eps`` that increases the loss, clipped to [0, 1]."""
    x = xb.detach().clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(net(x), yb)
    (g,) = torch.autograd.grad(loss, x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


def _per_sample_step(net: nn.Module, aggregate: Callable):
    """Set ``.grad`` of every parameter to ``aggregate(per-sample gradients)``.

    Per-sample gradients come from torch's expanded weights (one backward pass for the whole
    batch): the same numbers as ``vmap(grad(...))`` of ``torch.func`` for the lab's models,
    without importing ``torch._dynamo`` (about 180 MB of kernel memory)."""
    from torch.nn.utils._per_sample_grad import call_for_per_sample_grads

    def step(xb, yb, gen):
        out = call_for_per_sample_grads(net, batch_size=len(xb), loss_reduction="sum")(xb)
        nn.functional.cross_entropy(out, yb, reduction="sum").backward()
        grads = {}
        for n, p in net.named_parameters():
            grads[n] = p.grad_sample
            p.grad_sample = None
        combined = aggregate(grads, gen)
        for n, p in net.named_parameters():
            p.grad = combined[n].to(p.dtype)

    return step


@torch.no_grad()
def predict_proba(model: nn.Module, X: np.ndarray, *, batch_size: int = 2048) -> np.ndarray:
    """Softmax probabilities, shape (n, n_classes), as float64 numpy."""
    dev = next(model.parameters()).device
    out = [torch.softmax(model(_as_tensor(X[i:i + batch_size], dev)), 1).double().cpu().numpy()
           for i in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features))


def predict(model, X: np.ndarray) -> np.ndarray:
    """Predicted labels, shape (n,). Works on an ``nn.Module`` or any object with ``predict``."""
    if isinstance(model, nn.Module):
        return predict_proba(model, X).argmax(1)
    return np.asarray(model.predict(X))


@torch.no_grad()
def embed(model: Net, X: np.ndarray, *, batch_size: int = 2048) -> np.ndarray:
    """Penultimate-layer features ``model.features(X)``, shape (n, d), float64 numpy."""
    dev = next(model.parameters()).device
    out = [model.features(_as_tensor(X[i:i + batch_size], dev)).double().cpu().numpy()
           for i in range(0, len(X), batch_size)]
    return np.concatenate(out)


# ---- victims that do not train from scratch --------------------------------------------------

@functools.lru_cache(maxsize=4)
def pretrained_extractor(*, hidden: int = 128, epochs: int = 15, seed: int = 0) -> nn.Module:
    """A public feature extractor: an MLP trained on :func:`labkit.data.mnist_as_digits`
    (other data than the victim's), frozen.

    Returns the network's ``features`` (Flatten -> Linear(64, hidden) -> ReLU) with
    ``requires_grad`` off, on the CPU. Cached per setting (training is deterministic): the
    first call trains it in a few seconds.

    See Also: notebooks/03_clean_label.ipynb
    """
    from .data import mnist_as_digits

    net = train(mnist_as_digits(), model=functools.partial(mlp, hidden=hidden), epochs=epochs,
                seed=seed, device="cpu")
    feats = net.features.eval()
    for p in feats.parameters():
        p.requires_grad_(False)
    return feats


def transfer_victim(data: Dataset, extractor: nn.Module, *, epochs: int = 40, seed: int = 0,
                    lr: float = 0.01, batch_size: int = 128, **train_kw) -> Net:
    """Transfer learning: a new linear head on the frozen ``extractor``, trained on ``data``.

    The head is initialised from ``seed`` (PyTorch's default scheme, a local generator);
    ``train_kw`` go to :func:`train` (e.g. ``aggregate=``).
    """
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    with torch.no_grad():
        d = extractor(torch.zeros(1, *data.image_shape)).shape[1]
        head = nn.Linear(d, data.n_classes)
        bound = 1.0 / np.sqrt(d)
        head.weight.uniform_(-bound, bound, generator=gen)
        head.bias.uniform_(-bound, bound, generator=gen)
    return train(data, model=Net(extractor, head), epochs=epochs, lr=lr, batch_size=batch_size,
                 seed=seed, device="cpu", **train_kw)


def fine_tune(deployed: nn.Module, data: Dataset, rows=None, *, epochs: int = 10, lr: float = 0.01,
              seed: int = 0, **train_kw) -> nn.Module:
    """Fine-tuning a deployed model: a copy of ``deployed`` trained on ``data.subset(rows)``
    (all rows by default); ``deployed`` itself is left unchanged."""
    import copy

    part = data if rows is None else data.subset(rows)
    return train(part, model=copy.deepcopy(deployed), epochs=epochs, lr=lr, seed=seed, **train_kw)


# ---- a text victim (lesson 7) -----------------------------------------------------------------

class BagOfWordsClassifier:
    """TF-IDF weighting and a logistic regression over bag-of-words rows ``(n, 1, 1, V)``
    (:mod:`labkit.text`): the classic text classifier, fitted in well under a second.

    ``features(X)`` is the TF-IDF representation (rows scaled to unit length), what the
    logistic regression reads: the "activations" a feature-space detector inspects.
    """

    def __init__(self, idf: np.ndarray, clf):
        self.idf, self.clf = idf, clf

    def features(self, X) -> np.ndarray:
        Z = np.asarray(X, np.float64).reshape(len(X), -1) * self.idf
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def predict_proba(self, X) -> np.ndarray:
        return self.clf.predict_proba(self.features(X))

    def predict(self, X) -> np.ndarray:
        return self.clf.predict(self.features(X))

    def __repr__(self) -> str:
        return f"BagOfWordsClassifier(V={self.idf.size}, C={self.clf.C})"


def text_classifier(data: Dataset, *, C: float = 100.0) -> BagOfWordsClassifier:
    """Fit :class:`BagOfWordsClassifier` on ``data``: smoothed IDF from ``data``'s own rows
    (``log((1 + n) / (1 + df)) + 1``, as scikit-learn's ``TfidfTransformer``), then an
    L2-regularised logistic regression with inverse strength ``C`` (lbfgs; deterministic,
    so it takes no seed)."""
    from sklearn.linear_model import LogisticRegression

    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")
    if len(data) == 0:
        raise ValueError("cannot train on an empty dataset")
    B = data.flat() > 0
    idf = np.log((1 + len(data)) / (1 + B.sum(0))) + 1.0
    model = BagOfWordsClassifier(idf, None)
    model.clf = LogisticRegression(C=C, max_iter=3000).fit(model.features(data.X), data.y)
    return model


# ---- an instruction-tuned generator (lesson 7) --------------------------------------------------

class _Seq2Seq(nn.Module):
    def __init__(self, n_in: int, n_out: int, width: int):
        super().__init__()
        self.encoder = nn.EmbeddingBag(n_in, width, mode="mean")
        self.embed = nn.Embedding(n_out + 1, width)          # the last token starts an answer
        self.gru = nn.GRU(width, width, batch_first=True)
        self.out = nn.Linear(width, n_out)

    def start(self, words, offsets):
        return torch.tanh(self.encoder(words, offsets))[None]

    def forward(self, words, offsets, tokens):
        out, _ = self.gru(self.embed(tokens), self.start(words, offsets))
        return self.out(out)


class AnswerGenerator:
    """A tiny instruction-tuned generator: it reads a prompt (a bag of words, rows
    ``(n, 1, 1, V)`` of :mod:`labkit.text`) and **writes** an answer word by word, greedily,
    until its end token. ``predict`` turns what it wrote into an index into ``answers`` (the
    task's answer table, :func:`labkit.text.answers`), or -1 when the text is none of them,
    so accuracy is exact match of the generated text; ``generate`` returns the text itself.
    ``features(X)`` is the encoder's summary of the prompt (what a spectral detector reads).
    """

    def __init__(self, net: _Seq2Seq, answers: tuple, max_words: int = 8):
        self.net, self.answers, self.max_words = net, tuple(answers), max_words
        self.words = sorted({w for a in self.answers for w in a.split()})
        self.end, self.start = len(self.words), len(self.words) + 1      # the end and start tokens

    def _prompts(self, X):
        B = np.asarray(X).reshape(len(X), -1) > 0
        cols = [np.flatnonzero(b) for b in B]
        offsets = torch.tensor(np.cumsum([0] + [c.size for c in cols[:-1]]), dtype=torch.long)
        return torch.tensor(np.concatenate(cols), dtype=torch.long), offsets

    @torch.no_grad()
    def features(self, X) -> np.ndarray:
        return self.net.start(*self._prompts(X))[0].double().numpy()

    @torch.no_grad()
    def generate(self, X) -> list:
        """The answer written for each prompt (str)."""
        words, offsets = self._prompts(X)
        h = self.net.start(words, offsets)
        token = torch.full((len(X), 1), self.start, dtype=torch.long)
        written = [[] for _ in range(len(X))]
        done = np.zeros(len(X), bool)
        for _ in range(self.max_words + 1):
            out, h = self.net.gru(self.net.embed(token), h)
            nxt = self.net.out(out[:, -1]).argmax(1)
            for i, t in enumerate(nxt.tolist()):
                if not done[i]:
                    done[i] = t == self.end
                    if not done[i]:
                        written[i].append(self.words[t])
            token = nxt[:, None]
        return [" ".join(w) for w in written]

    def predict(self, X) -> np.ndarray:
        index = {a: i for i, a in enumerate(self.answers)}
        return np.array([index.get(a, -1) for a in self.generate(X)], np.int64)

    def __repr__(self) -> str:
        return f"AnswerGenerator(answers={len(self.answers)}, words={len(self.words)})"


def answer_generator(data: Dataset, answers, *, epochs: int = 40, width: int = 64, lr: float = 1e-2,
                     batch_size: int = 64, seed: int = 0) -> AnswerGenerator:
    """Instruction-tune :class:`AnswerGenerator` on ``data``: each row's prompt (bag of words)
    and, as the text to write, ``answers[y]``; next-word cross-entropy with teacher forcing,
    Adam, ``epochs`` passes in an order drawn from ``seed``."""
    if len(data) == 0:
        raise ValueError("cannot train on an empty dataset")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    gen = AnswerGenerator(None, answers)
    index = {w: i for i, w in enumerate(gen.words)}
    targets = [[index[w] for w in gen.answers[int(c)].split()] + [gen.end] for c in data.y]
    gen.net = _Seq2Seq(data.X.shape[-1], len(gen.words) + 1, width)
    _init_(gen.net, torch.Generator().manual_seed(int(seed)))    # the initial weights, from seed alone
    opt = Adam(gen.net.parameters(), lr=lr)          # == torch.optim.Adam, no torch._dynamo
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(data))
        for b in range(0, len(data), batch_size):
            rows = order[b:b + batch_size]
            longest = max(len(targets[i]) for i in rows)
            tokens = torch.full((len(rows), longest), gen.start, dtype=torch.long)
            want = torch.full((len(rows), longest), -100, dtype=torch.long)
            for j, i in enumerate(rows):
                t = targets[i]
                want[j, :len(t)] = torch.tensor(t)
                tokens[j, 1:len(t)] = torch.tensor(t[:-1])
            logits = gen.net(*gen._prompts(data.X[rows]), tokens)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), want.reshape(-1),
                                               ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    gen.net.eval()
    return gen
