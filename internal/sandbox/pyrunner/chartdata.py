# vizops chart data extraction: what a figure plots, read back from its artists
# (matplotlib) or its JSON (plotly), like E2B's code-interpreter `chart` object. The Go
# side puts this file before base.py and kernel.py (one `python3 -c` script), and tests load it on
# its own: it imports only the standard library at the top and never raises out of
# chart_data_of_figure / chart_data_of_plotly (a figure it cannot read gives no chart).
#
# Output (JSON, field names as Go's chartdata.Chart):
#   {"type", "library", "title", "xLabel", "yLabel", "xUnit", "yUnit",
#    "series": [{"name", "type", "labels", "x", "y", "boxes": [{label,min,q1,median,q3,max}],
#                "omitted"}], "omittedSeries"}
import base64 as _cd_base64
import math as _cd_math
import re as _cd_re
import struct as _cd_struct

CHART_MAX_CHARTS = 8
CHART_MAX_SERIES = 12
CHART_MAX_POINTS = 300
CHART_MAX_TEXT = 200
CHART_MAX_LABEL = 64

_CD_UNIT = _cd_re.compile(r"\(([^()]{1,30})\)\s*$")


def _cd_text(s, limit=CHART_MAX_LABEL):
    s = "" if s is None else str(s)
    s = s.strip()
    if len(s.encode()) <= limit:
        return s
    cut = s.encode()[: limit - 3].decode("utf-8", "ignore")
    return cut + "\u2026"


def _cd_num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if _cd_math.isnan(f) or _cd_math.isinf(f):
        return None
    return f


def _cd_unit(label):
    m = _CD_UNIT.search(label or "")
    return m.group(1).strip() if m else ""


def _cd_series(name, typ, labels=None, x=None, y=None, boxes=None):
    s = {"name": "" if (name is None or str(name).startswith("_")) else _cd_text(name), "type": typ}
    n = max(len(labels or []), len(x or []), len(y or []), len(boxes or []))
    if labels:
        s["labels"] = [_cd_text(v) for v in labels[:CHART_MAX_POINTS]]
    if x:
        s["x"] = x[:CHART_MAX_POINTS]
    if y:
        s["y"] = y[:CHART_MAX_POINTS]
    if boxes:
        s["boxes"] = boxes[:CHART_MAX_POINTS]
    if n > CHART_MAX_POINTS:
        s["omitted"] = n - CHART_MAX_POINTS
    return s


def _cd_chart(typ, library, title, xlabel, ylabel, series):
    c = {"type": typ, "library": library, "title": _cd_text(title, CHART_MAX_TEXT),
         "xLabel": _cd_text(xlabel), "yLabel": _cd_text(ylabel),
         "xUnit": _cd_text(_cd_unit(xlabel)), "yUnit": _cd_text(_cd_unit(ylabel)),
         "series": series[:CHART_MAX_SERIES]}
    if len(series) > CHART_MAX_SERIES:
        c["omittedSeries"] = len(series) - CHART_MAX_SERIES
    return c


# ---- matplotlib ---------------------------------------------------------------------


def _cd_axis_kind(axis):
    name = type(axis.get_major_formatter()).__name__
    # set_xticks(pos, labels) installs a FuncFormatter (matplotlib 3.6) or a
    # FixedFormatter; string data a StrCategoryFormatter.
    if name in ("FixedFormatter", "StrCategoryFormatter", "FuncFormatter"):
        return "category"
    if "Date" in name:
        return "date"
    return "number"


def _cd_ticks(axis):
    out = []
    try:
        for t in axis.get_ticklabels():
            text = t.get_text()
            if text:
                pos = t.get_position()
                out.append((float(pos[0] if axis.axis_name == "x" else pos[1]), text))
    except Exception:
        pass
    return out


def _cd_label_at(ticks, p):
    best, dist = "", None
    for pos, text in ticks:
        d = abs(pos - p)
        if dist is None or d < dist:
            best, dist = text, d
    if dist is None or dist > 0.5:
        return ""
    return best


def _cd_xlabels(axis, xs):
    """Category labels for positions xs when the axis is categorical or dates, else None."""
    kind = _cd_axis_kind(axis)
    if kind == "category":
        ticks = _cd_ticks(axis)
        return [_cd_label_at(ticks, x) for x in xs]
    if kind == "date":
        try:
            import matplotlib.dates as mdates

            return [mdates.num2date(x).date().isoformat() for x in xs]
        except Exception:
            return None
    return None


def _cd_boxes(ax, lines):
    """Boxes of a vertical box plot, and the lines they consist of."""
    from matplotlib.patches import PathPatch

    rects = []
    used = set()
    for ln in lines:
        try:
            xs, ys = [float(v) for v in ln.get_xdata(orig=False)], [float(v) for v in ln.get_ydata(orig=False)]
        except (TypeError, ValueError):
            continue
        if len(xs) == 5 and len(set(xs)) == 2 and len(set(ys)) == 2:
            rects.append((min(xs), max(xs), min(ys), max(ys)))
            used.add(id(ln))
    for p in ax.patches:
        if isinstance(p, PathPatch):
            v = p.get_path().vertices
            xs, ys = set(round(float(a), 9) for a in v[:, 0]), set(round(float(a), 9) for a in v[:, 1])
            if len(xs) == 2 and len(ys) == 2:
                rects.append((min(xs), max(xs), min(ys), max(ys)))
    if not rects:
        return [], used
    rects.sort()
    ticks = _cd_ticks(ax.xaxis)
    boxes = []
    for x0, x1, q1, q3 in rects:
        cx, half = (x0 + x1) / 2, (x1 - x0) / 2
        med, lo, hi = None, q1, q3
        for ln in lines:
            try:
                xs, ys = [float(v) for v in ln.get_xdata(orig=False)], [float(v) for v in ln.get_ydata(orig=False)]
            except (TypeError, ValueError):
                continue
            if len(xs) != 2 or id(ln) in used:
                continue
            if ys[0] == ys[1] and x0 - 1e-9 <= min(xs) and max(xs) <= x1 + 1e-9:
                if q1 - 1e-9 <= ys[0] <= q3 + 1e-9 and med is None and abs(min(xs) - x0) < 1e-9 and abs(max(xs) - x1) < 1e-9:
                    med = ys[0]
                used.add(id(ln))  # a median or a cap
            elif xs[0] == xs[1] and abs(xs[0] - cx) <= half * 0.01 + 1e-9:
                lo, hi = min(lo, min(ys)), max(hi, max(ys))
                used.add(id(ln))  # a whisker
        for ln in lines:  # fliers: markers only, at the box's x
            try:
                xs = [float(v) for v in ln.get_xdata(orig=False)]
            except (TypeError, ValueError):
                continue
            if ln.get_linestyle() in ("None", "none", " ", "") and xs and all(abs(x - cx) <= half + 1e-9 for x in xs):
                used.add(id(ln))
        if med is None:
            med = (q1 + q3) / 2
        boxes.append({"label": _cd_text(_cd_label_at(ticks, cx)), "min": lo, "q1": q1, "median": med, "q3": q3, "max": hi})
    return boxes, used


def _cd_on_data(ax, artist):
    try:
        return artist.get_transform() == ax.transData
    except Exception:
        return True


def chart_data_of_axes(ax):
    from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
    from matplotlib.container import BarContainer
    from matplotlib.patches import Wedge

    if hasattr(ax, "_colorbar") or ax.get_label() == "<colorbar>" or not ax.get_visible():
        return None
    title = ax.get_title() or ax.get_title("left") or ""
    if not title and ax.figure is not None and getattr(ax.figure, "_suptitle", None) is not None:
        title = ax.figure._suptitle.get_text()
    xlabel, ylabel = ax.get_xlabel(), ax.get_ylabel()
    kinds = []

    # Pie: wedges carry their labels; matplotlib keeps only the angles, so the values
    # are shares in percent.
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    if wedges:
        labels = [w.get_label() if not str(w.get_label()).startswith("_") else "" for w in wedges]
        shares = [abs(w.theta2 - w.theta1) / 360.0 * 100.0 for w in wedges]
        return _cd_chart("pie", "matplotlib", title, xlabel, ylabel, [_cd_series("", "pie", labels=labels, y=shares)])

    series = []
    lines = [ln for ln in ax.get_lines() if ln.get_visible() and _cd_on_data(ax, ln)]
    boxes, used = _cd_boxes(ax, lines)
    if boxes:
        kinds.append("box")
        series.append(_cd_series("", "box", boxes=boxes))
    lines = [ln for ln in lines if id(ln) not in used]

    for mesh in [c for c in ax.collections if isinstance(c, QuadMesh)] + list(ax.images):
        try:
            arr = mesh.get_array()
            vals = [v for v in (_cd_num(a) for a in arr.ravel().tolist()) if v is not None]
        except Exception:
            continue
        kinds.append("heatmap")
        series.append(_cd_series("", "heatmap", y=vals))

    for c in ax.containers:
        if not isinstance(c, BarContainer) or not len(c.patches):
            continue
        horizontal = getattr(c, "orientation", None) == "horizontal"
        # Bars without a finite, non-zero thickness are invisible helpers (seaborn's
        # histplot adds a NaN one).
        ps = [p for p in c.patches if _cd_num(p.get_height() if horizontal else p.get_width())]
        if not ps:
            continue
        if horizontal:
            pos = [p.get_y() + p.get_height() / 2 for p in ps]
            vals = [p.get_width() for p in ps]
            spans = sorted((p.get_y(), p.get_y() + p.get_height()) for p in ps)
            axis = ax.yaxis
        else:
            pos = [p.get_x() + p.get_width() / 2 for p in ps]
            vals = [p.get_height() for p in ps]
            spans = sorted((p.get_x(), p.get_x() + p.get_width()) for p in ps)
            axis = ax.xaxis
        vals = [_cd_num(v) or 0.0 for v in vals]
        labels = _cd_xlabels(axis, pos)
        contiguous = len(ps) > 2 and all(abs(a[1] - b[0]) < 1e-9 * max(1.0, abs(b[0])) for a, b in zip(spans, spans[1:]))
        if contiguous and labels is None:
            kinds.append("histogram")
            series.append(_cd_series(c.get_label(), "histogram", x=[s[0] for s in spans], y=vals))
            continue
        typ = "barh" if horizontal else "bar"
        kinds.append(typ)
        if labels is None:
            series.append(_cd_series(c.get_label(), typ, x=pos, y=vals))
        else:
            series.append(_cd_series(c.get_label(), typ, labels=labels, y=vals))

    for coll in ax.collections:
        if isinstance(coll, PolyCollection) and _cd_on_data(ax, coll):
            for path in coll.get_paths():
                v = path.vertices
                n = (len(v) - 2) // 2
                if n < 1:
                    continue
                xs = [float(a) for a in v[1 : n + 1, 0]]
                top = [float(a) for a in v[1 : n + 1, 1]]
                bottom = [float(a) for a in v[n + 2 : 2 * n + 2, 1]][::-1]
                if len(bottom) != len(top):
                    bottom = [0.0] * len(top)
                # fill_between(x, y) runs along y and back along 0; stackplot runs
                # along the layer's bottom and back along its top.
                if all(b == 0 for b in bottom):
                    ys = top
                elif all(t == 0 for t in top):
                    ys = bottom
                else:
                    ys = [abs(t - b) for t, b in zip(top, bottom)]
                kinds.append("area")
                labels = _cd_xlabels(ax.xaxis, xs)
                if labels is None:
                    series.append(_cd_series(coll.get_label(), "area", x=xs, y=ys))
                else:
                    series.append(_cd_series(coll.get_label(), "area", labels=labels, y=ys))
        elif isinstance(coll, PathCollection):
            try:
                offs = coll.get_offsets()
                pts = [(_cd_num(a), _cd_num(b)) for a, b in offs]
            except Exception:
                continue
            pts = [(a, b) for a, b in pts if a is not None and b is not None]
            if not pts:
                continue
            kinds.append("scatter")
            series.append(_cd_series(coll.get_label(), "scatter", x=[a for a, _ in pts], y=[b for _, b in pts]))

    for ln in lines:
        try:
            xs = [_cd_num(v) for v in ln.get_xdata(orig=False)]
            ys = [_cd_num(v) for v in ln.get_ydata(orig=False)]
        except (TypeError, ValueError):
            continue
        pts = [(a, b) for a, b in zip(xs, ys) if a is not None and b is not None]
        if len(pts) < 1:
            continue
        if len(pts) == 2 and pts[0][0] == pts[1][0]:
            continue  # an error bar
        is_points = ln.get_linestyle() in ("None", "none", " ", "")
        typ = "scatter" if is_points else "line"
        kinds.append(typ)
        labels = _cd_xlabels(ax.xaxis, [a for a, _ in pts])
        if labels is None:
            series.append(_cd_series(ln.get_label(), typ, x=[a for a, _ in pts], y=[b for _, b in pts]))
        else:
            series.append(_cd_series(ln.get_label(), typ, labels=labels, y=[b for _, b in pts]))

    if not series:
        return None
    for k in ("box", "heatmap", "histogram", "barh", "bar", "area", "scatter", "line"):
        if k in kinds:
            return _cd_chart(k, "matplotlib", title, xlabel, ylabel, series)
    return _cd_chart("unknown", "matplotlib", title, xlabel, ylabel, series)


def chart_data_of_figure(fig):
    """The charts of a matplotlib figure (one per axes with data); [] when unreadable."""
    out = []
    try:
        for ax in fig.axes:
            if len(out) >= CHART_MAX_CHARTS:
                break
            try:
                c = chart_data_of_axes(ax)
            except Exception:
                c = None
            if c is not None:
                out.append(c)
    except Exception:
        return []
    return out


# ---- plotly -------------------------------------------------------------------------


_CD_DTYPES = {"f8": "d", "f4": "f", "i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "i8": "q", "u8": "Q"}


def _cd_array(v):
    """A plotly array: a list, or a typed array {"dtype", "bdata"} (plotly >= 6)."""
    if v is None:
        return []
    if isinstance(v, dict) and "bdata" in v:
        code = _CD_DTYPES.get(str(v.get("dtype", "f8")))
        if code is None:
            return []
        raw = _cd_base64.b64decode(v["bdata"])
        n = len(raw) // _cd_struct.calcsize(code)
        return list(_cd_struct.unpack("<%d%s" % (n, code), raw[: n * _cd_struct.calcsize(code)]))
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def _cd_title(t):
    if isinstance(t, dict):
        return t.get("text") or ""
    return t or ""


def _cd_flat(v):
    out = []
    for row in _cd_array(v):
        if isinstance(row, (list, tuple, dict)):
            out.extend(_cd_array(row))
        else:
            out.append(row)
    return out


def _cd_points(xs, ys):
    """Split x into labels (text) or numbers, keeping points whose y is a number."""
    if not xs:
        xs = list(range(len(ys)))
    text = any(isinstance(a, str) and _cd_num(a) is None for a in xs)
    labels, nx, ny = [], [], []
    for a, b in zip(xs, ys):
        b = _cd_num(b)
        if b is None:
            continue
        if text:
            labels.append(str(a))
        else:
            a = _cd_num(a)
            if a is None:
                continue
            nx.append(a)
        ny.append(b)
    return labels, nx, ny


def _cd_box_stats(vals):
    vals = sorted(v for v in (_cd_num(a) for a in vals) if v is not None)
    if not vals:
        return None

    def q(p):
        k = (len(vals) - 1) * p
        f = int(_cd_math.floor(k))
        c = min(f + 1, len(vals) - 1)
        return vals[f] + (vals[c] - vals[f]) * (k - f)

    q1, med, q3 = q(0.25), q(0.5), q(0.75)
    iqr = q3 - q1
    lo = min(v for v in vals if v >= q1 - 1.5 * iqr)
    hi = max(v for v in vals if v <= q3 + 1.5 * iqr)
    return {"min": lo, "q1": q1, "median": med, "q3": q3, "max": hi}


def chart_data_of_plotly(fig):
    """The chart of a plotly figure given as its JSON dict; None when unreadable."""
    try:
        return _cd_plotly(fig)
    except Exception:
        return None


def _cd_plotly(fig):
    layout = fig.get("layout") or {}
    title = _cd_title(layout.get("title"))
    xaxis, yaxis = layout.get("xaxis") or {}, layout.get("yaxis") or {}
    xlabel, ylabel = _cd_title(xaxis.get("title")), _cd_title(yaxis.get("title"))
    series, kinds, boxes = [], [], []
    for t in fig.get("data") or []:
        typ = t.get("type") or "scatter"
        name = t.get("name") or ""
        if typ in ("bar",):
            horizontal = t.get("orientation") == "h"
            xs, ys = _cd_array(t.get("x")), _cd_array(t.get("y"))
            if horizontal:
                xs, ys = ys, xs
            labels, nx, ny = _cd_points(xs, ys)
            if xaxis.get("type") == "category" and nx and not labels:
                labels, nx = [FormatNumberPy(a) for a in nx], []
            k = "barh" if horizontal else "bar"
            kinds.append(k)
            series.append(_cd_series(name, k, labels=labels, x=nx, y=ny))
        elif typ in ("scatter", "scattergl"):
            labels, nx, ny = _cd_points(_cd_array(t.get("x")), _cd_array(t.get("y")))
            mode = t.get("mode") or ("lines+markers" if len(ny) < 20 else "lines")
            if t.get("fill") not in (None, "none") or t.get("stackgroup"):
                k = "area"
            elif "lines" in mode:
                k = "line"
            else:
                k = "scatter"
            kinds.append(k)
            series.append(_cd_series(name, k, labels=labels, x=nx, y=ny))
        elif typ == "pie":
            labels = [str(a) for a in _cd_array(t.get("labels"))]
            vals = [_cd_num(v) or 0.0 for v in _cd_array(t.get("values"))]
            if not vals:
                vals = [1.0] * len(labels)
            kinds.append("pie")
            series.append(_cd_series(name, "pie", labels=labels, y=vals))
        elif typ == "box":
            vals = _cd_array(t.get("y")) or _cd_array(t.get("x"))
            xs = _cd_array(t.get("x")) if t.get("y") is not None else []
            if xs and len(xs) == len(vals) and all(isinstance(a, str) for a in xs):
                groups = {}
                for a, v in zip(xs, vals):
                    groups.setdefault(a, []).append(v)
            else:
                groups = {name: vals}
            for g, gv in groups.items():
                st = _cd_box_stats(gv)
                if st is not None:
                    st["label"] = _cd_text(g)
                    boxes.append(st)
            kinds.append("box")
        elif typ == "histogram":
            vals = [v for v in (_cd_num(a) for a in (_cd_array(t.get("x")) or _cd_array(t.get("y")))) if v is not None]
            kinds.append("histogram")
            if vals:
                import numpy as _np

                counts, edges = _np.histogram(vals, bins="auto")
                series.append(_cd_series(name, "histogram", x=[float(e) for e in edges[:-1]], y=[float(c) for c in counts]))
        elif typ in ("heatmap", "contour"):
            vals = [v for v in (_cd_num(a) for a in _cd_flat(t.get("z"))) if v is not None]
            kinds.append("heatmap")
            series.append(_cd_series(name, "heatmap", y=vals))
        else:
            kinds.append("unknown")
    if boxes:
        series.insert(0, _cd_series("", "box", boxes=boxes))
    if not series:
        return None
    for k in ("pie", "box", "heatmap", "histogram", "barh", "bar", "area", "scatter", "line"):
        if k in kinds:
            return _cd_chart(k, "plotly", title, xlabel, ylabel, series)
    return _cd_chart("unknown", "plotly", title, xlabel, ylabel, series)


def chart_data_json_safe(v):
    """v with every non-finite or non-JSON number replaced by None (Go reads it as 0),
    so one odd value never makes the job's report unreadable."""
    if isinstance(v, dict):
        return {str(k): chart_data_json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [chart_data_json_safe(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if _cd_math.isfinite(f) else None


def FormatNumberPy(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))
