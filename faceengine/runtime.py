"""The one way the engine opens an ONNX model on onnxruntime: session options, threads, provider, and an
optional edit of the graph's shape metadata at load (weights untouched).

onnx and onnxruntime are imported on first use, so a process that never runs a network on onnxruntime does
not pay for loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROVIDERS = ["CPUExecutionProvider"]

# Changes a loaded onnx.ModelProto in place.
ModelEdit = Callable[[Any], None]


def session_options(threads: int) -> Any:
    """onnxruntime.SessionOptions: quiet, fully optimised, `threads` intra-op threads (0 = onnxruntime's own
    choice) and no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # Spinning idle threads steal the core from a second worker process on a small machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def edited_model(model_path: Path, edit: ModelEdit) -> bytes:
    """The serialised model after `edit` has changed it."""
    import onnx

    model = onnx.load(str(model_path))
    edit(model)
    return bytes(model.SerializeToString())


def make_symbolic(dim: Any, name: str) -> None:
    """Turn a fixed tensor dimension (onnx TensorShapeProto.Dimension) into a named, symbolic one."""
    dim.ClearField("dim_value")
    dim.dim_param = name


class OnnxSession:
    """An onnxruntime InferenceSession on the CPU, set up as above; `edit` rewrites the graph before loading."""

    def __init__(self, model_path: Path, *, threads: int, edit: ModelEdit | None = None) -> None:
        import onnxruntime as ort

        model = str(model_path) if edit is None else edited_model(model_path, edit)
        self._session = ort.InferenceSession(model, sess_options=session_options(threads), providers=PROVIDERS)

    def get_inputs(self) -> list[Any]:
        return self._session.get_inputs()

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(output_names, input_feed)
