# Test prelude (not part of generated code): record plotly figures instead of opening
# a browser, as the sandbox captures fig.show() as HTML.
import os as _os
_os.environ.setdefault("MPLBACKEND", "Agg")
_shown_plotly = []
try:
    import plotly.basedatatypes as _pbd
    _pbd.BaseFigure.show = lambda self, *a, **k: _shown_plotly.append(self)
except ImportError:
    pass
