import matplotlib

matplotlib.use("Agg")

import labkit as lk  # noqa: E402


def _title(fig):
    return fig.axes[0].get_title()


def test_label_flip_explorer_redraws_on_change():
    box = lk.widgets.label_flip_explorer()
    assert set(box.controls) == {"rate", "strategy", "k", "eta"}
    first = box.figure
    assert "detection precision" in _title(first)
    box.controls["eta"].value = 0.9            # a defence setting: reuses the cached victim
    assert box.figure is not first
    box.controls["strategy"].value = "targeted"
    assert "targeted" in _title(box.figure) and box.last_seconds > 0
