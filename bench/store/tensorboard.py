"""TensorBoard event files of a pair, beside its CSVs: ``tensorboard --logdir results/`` shows every run.

One TensorBoard run per (optimizer, seed): the pair folder (``<experiment>/<run-id>/runs/adam-seed0``).
It holds every CSV column as a scalar at its iteration (``series_tag``), every quality metric at its
evaluation, the sample grid at each sample interval, and the HParams plugin's session records: the
optimizer's hyper-parameters, its label and the seed, one session per pair, so the HParams table lists
every seed and filters, sorts and colours by optimizer and seed.

The CSVs are the record; the events are derived from them. A resumed pair rewrites its events from the
verified rows it keeps (``PairEvents(keep=...)``), then appends, so no point is lost or written twice;
``export_pair`` writes them for a pair trained without. Written with TensorBoard's own event writer and
protocol buffers (pure Python: no TensorFlow op, about 20 us per iteration).
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.metric_table import STEP_METRICS
from bench.core.names import NETWORKS
from bench.store.files import outside, read_regular, warn, writing
from bench.store.layout import RunFiles
from bench.store.logs import CSV_COLUMNS, QUALITY_COLUMNS, TIMING_COLUMNS, series_tag, whole_lines

EVENTS_GLOB = "events.out.tfevents.*"
SAMPLES_TAG = "samples"


def hparams_of(exp_name: str, run_id: str, label: str, seed: int, described: Mapping[str, Any]) -> dict[str, Any]:
    """A pair's hyper-parameters, flat, as the HParams plugin and MLflow take them: ``described`` is the
    manifest's entry for the optimizer (its Keras class as ``type``, effective values per network); a value
    the two networks share appears once, one they do not as ``generator.x`` and ``discriminator.x``; unset
    Keras options (None) are left out."""
    out: dict[str, Any] = {"experiment": exp_name, "run": run_id, "optimizer": label,
                           "type": str(described.get("type", label)), "seed": int(seed)}
    for key in ("class", "source_sha256"):  # a user's class: where it comes from, which version of its code
        if isinstance(described.get(key), str):
            out[key] = described[key]
    nets = {n: described.get(n) or {} for n in NETWORKS}
    for key in dict.fromkeys([*nets["generator"], *nets["discriminator"]]):
        values = {n: nets[n].get(key) for n in nets}
        if values["generator"] == values["discriminator"]:
            values = {"": values["generator"]}
        for net, value in values.items():
            if value is None:
                continue
            out[f"{net}.{key}" if net else key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out


def session_name(run_id: str, pair: str) -> str:
    """The pair's HParams session (its row in the HParams table): one per (optimizer, seed), so the table
    lists every seed, filters by optimizer and seed, and colours by optimizer in its parallel-coordinates view
    (sessions sharing a name would be merged into one row showing one seed)."""
    return f"{run_id}/{pair}"


class PairEvents:
    """The event file of one pair. ``keep_metrics`` / ``keep_quality``: the CSV lines (with newlines) the
    pair's logs start from; every older event file of the pair is removed and those rows written first."""

    def __init__(self, folder: Path, hparams: dict, session: str, keep_metrics: list[str] | None = None,
                 keep_quality: list[str] | None = None, samples_upto: int = -1, start_time: float | None = None):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self.folder = folder
        self.start = time.time() if start_time is None else start_time
        with writing(folder):
            for old in folder.glob(EVENTS_GLOB):
                old.unlink()
            folder.mkdir(parents=True, exist_ok=True)
            # flush_secs: TensorBoard shows a live run within half a minute; every checkpoint flushes too
            self._writer = EventFileWriter(str(folder), max_queue_size=1024, flush_secs=30)
        self._session_start(hparams, session)
        self._metric_tags = [series_tag(c) for c in (*STEP_METRICS, *TIMING_COLUMNS)]
        for line in keep_metrics or []:
            f = line.rstrip("\n").split(",")
            row = dict(zip(CSV_COLUMNS, f, strict=True))
            self.metrics(int(row["step"]), [float(row[c]) for c in STEP_METRICS], float(row["step_seconds"]),
                         float(row["elapsed_seconds"]))
        groups: dict[int, dict[str, float]] = {}
        for line in keep_quality or []:
            row = dict(zip(QUALITY_COLUMNS, line.rstrip("\n").split(","), strict=True))
            groups.setdefault(int(row["step"]), {})[row["metric"]] = float(row["value"])
        for step, values in groups.items():
            self.quality(step, values)
        for step, png in sample_pngs(folder, samples_upto):
            self.image(step, png)

    def _add(self, step: int, values: list, wall: float | None = None) -> None:
        self._writer.add_event(self._event(wall_time=time.time() if wall is None else wall, step=int(step),
                                           summary=self._summary(value=values)))

    def _session_start(self, hparams: dict, session: str) -> None:
        from tensorboard.plugins.hparams import summary_v2

        summary = summary_v2.hparams_pb(hparams, trial_id=session, start_time_secs=self.start)
        self._writer.add_event(self._event(wall_time=self.start, step=0, summary=summary))

    def metrics(self, step: int, values, step_seconds: float, elapsed: float) -> None:
        """One iteration's CSV row (timings included), at the wall time it was logged."""
        numbers = [*(float(v) for v in values), step_seconds, elapsed]
        self._add(step, [self._summary.Value(tag=t, simple_value=v) for t, v in zip(self._metric_tags, numbers,
                                                                                    strict=True)],
                  self.start + elapsed)

    def quality(self, step: int, values: Mapping[str, float]) -> None:
        self._add(step, [self._summary.Value(tag=series_tag(k, quality=True), simple_value=float(v))
                         for k, v in values.items()])

    def image(self, step: int, png: bytes) -> None:
        from PIL import Image

        with Image.open(io.BytesIO(png)) as img:
            width, height, channels = img.width, img.height, len(img.getbands())
        picture = self._summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png)
        self._add(step, [self._summary.Value(tag=SAMPLES_TAG, image=picture)])

    def end(self, status: str) -> None:
        """The HParams session's end: finished (success) or diverged/failed (failure); an interrupted pair
        stays running, and its resume rewrites this file."""
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        code = {"finished": api_pb2.STATUS_SUCCESS, "diverged": api_pb2.STATUS_FAILURE,
                "failed": api_pb2.STATUS_FAILURE}.get(status)
        if code is None:
            return
        data = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(
            status=code, end_time_secs=time.time()))
        value = self._summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
                                    tensor=metadata.NULL_TENSOR)
        self._add(0, [value])

    def flush(self) -> None:
        with writing(self.folder):
            self._writer.flush()

    def close(self) -> None:
        with writing(self.folder):
            self._writer.close()


def sample_pngs(folder: Path, upto: float) -> list[tuple[int, bytes]]:
    """The pair's sample grids up to iteration ``upto``, each read and checked to be a PNG image of the pair's
    own folder; one that is not (a symlink out of it, another kind of file) is skipped with a warning."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for png in sorted((folder / "samples").glob("step_*.png")):
        m = re.fullmatch(r"step_(\d{1,12})\.png", png.name)
        if m is None or int(m.group(1)) > upto or outside(folder, png):
            continue
        try:
            data = read_regular(png)
            with Image.open(io.BytesIO(data)) as img:
                if img.format != "PNG":
                    raise UnidentifiedImageError("not a PNG")
                img.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            warn(f"{png}: not a readable PNG image ({type(e).__name__}); left out of the TensorBoard events")
            continue
        out.append((int(m.group(1)), data))
    return out


def export_pair(folder: Path, hparams: dict, session: str, status: str, start_time: float | None) -> Path:
    """Write a pair's events from its files (a run made before, or with --no-tensorboard). Everything is read
    and checked before the old events are removed: a file that is not what it should be never leaves a pair
    with half its events."""
    files = RunFiles(folder)
    metrics, quality = whole_lines(files.metrics, CSV_COLUMNS), whole_lines(files.quality, QUALITY_COLUMNS)
    pngs = sample_pngs(folder, math.inf)
    events = PairEvents(folder, hparams, session, metrics, quality, samples_upto=-1, start_time=start_time)
    for step, png in pngs:
        events.image(step, png)
    events.end(status)
    events.close()
    return folder

