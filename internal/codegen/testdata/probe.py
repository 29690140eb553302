# Test probe appended after generated code: prints one JSON line describing what the
# code drew, so tests check the chart from its artists, not from its name.
import json as _json
import sys as _sys


def _probe():
    out = {"figures": [], "plotly": []}
    if "matplotlib.pyplot" in _sys.modules:
        import matplotlib.pyplot as plt
        from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
        from matplotlib.container import BarContainer
        from matplotlib.image import AxesImage
        from matplotlib.patches import Rectangle, Wedge

        for num in plt.get_fignums():
            fig = plt.figure(num)
            axes = []
            for ax in fig.axes:
                bars = []
                for c in ax.containers:
                    if isinstance(c, BarContainer) and len(c.patches):
                        ps = list(c.patches)
                        horizontal = getattr(c, "orientation", None) == "horizontal"
                        if horizontal:
                            spans = sorted((p.get_y(), p.get_y() + p.get_height()) for p in ps)
                        else:
                            spans = sorted((p.get_x(), p.get_x() + p.get_width()) for p in ps)
                        contiguous = len(ps) > 1 and all(abs(a[1] - b[0]) < 1e-9 * max(1.0, abs(b[0])) for a, b in zip(spans, spans[1:]))
                        heights = [float(p.get_width() if horizontal else p.get_height()) for p in ps]
                        bars.append({"n": len(ps), "horizontal": horizontal, "contiguous": contiguous, "heights": heights[:50]})
                lines, line_ys, box_rects = [], [], 0
                for ln in ax.lines:
                    xs, ys = ln.get_xdata(orig=False), ln.get_ydata(orig=False)
                    lines.append(len(xs))
                    try:
                        line_ys.append([float(v) for v in ys][:50])
                    except (TypeError, ValueError):
                        line_ys.append([])
                    try:
                        if len(xs) == 5 and len(set(map(float, xs))) == 2 and len(set(map(float, ys))) == 2:
                            box_rects += 1
                    except (TypeError, ValueError):
                        pass
                polys = []
                for coll in ax.collections:
                    if isinstance(coll, PolyCollection):
                        verts = [v for p in coll.get_paths() for v in p.vertices]
                        zeros = sum(1 for v in verts if abs(v[1]) < 1e-12)
                        polys.append({"vertices": len(verts), "bottom_zero": bool(verts) and zeros >= len(verts) // 2 - 1})
                axes.append({
                    "title": ax.get_title(),
                    "xlabel": ax.get_xlabel(),
                    "ylabel": ax.get_ylabel(),
                    "bars": bars,
                    "rects": sum(1 for p in ax.patches if isinstance(p, Rectangle)),
                    "wedges": sum(1 for p in ax.patches if isinstance(p, Wedge)),
                    "xticklabels": [t.get_text() for t in ax.get_xticklabels()][:50],
                    "lines": lines,
                    "line_ys": line_ys,
                    "box_rects": box_rects,
                    "scatter": [len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)],
                    "quadmesh": sum(1 for c in ax.collections if isinstance(c, QuadMesh)),
                    "images": sum(1 for i in ax.images if isinstance(i, AxesImage)),
                    "polys": polys,
                })
            out["figures"].append(axes)
    for fig in globals().get("_shown_plotly", []):
        import plotly.graph_objects as go

        traces = []
        for t in fig.data:
            n = 0
            for attr in ("x", "y", "values", "z"):
                v = getattr(t, attr, None)
                if v is not None:
                    n = max(n, len(v))
            traces.append({
                "type": t.type,
                "orientation": getattr(t, "orientation", None),
                "mode": getattr(t, "mode", None),
                "fill": getattr(t, "fill", None),
                "stackgroup": getattr(t, "stackgroup", None),
                "n": n,
            })
        out["plotly"].append({"is_figure": isinstance(fig, go.Figure), "title": fig.layout.title.text, "traces": traces})
    print("\nPROBE:" + _json.dumps(out))


_probe()
