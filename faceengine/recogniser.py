"""SFace (and ArcFace-style) recognisers: aligned 112×112 crops in, L2-normalised templates out, in batches."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from faceengine.runtime import OnnxSession, make_symbolic


class Recogniser(Protocol):
    embedding_dim: int

    def embed(self, crops_bgr: np.ndarray) -> np.ndarray: ...


def to_input_tensor(crops_bgr: np.ndarray, *, rgb: bool, mean: float, scale: float) -> np.ndarray:
    """(N, 112, 112, 3) uint8 BGR crops → (N, 3, 112, 112) float32 network input."""
    batch = crops_bgr[..., ::-1] if rgb else crops_bgr
    tensor = batch.astype(np.float32).transpose(0, 3, 1, 2)
    if mean != 0.0 or scale != 1.0:
        tensor = (tensor - mean) * scale
    return np.ascontiguousarray(tensor)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def symbolic_batch(model: Any) -> None:
    """A symbolic batch dimension, and the weights no longer declared as graph inputs.

    SFace's exported graph fixes the batch at 1 and lists every initializer as an input, which stops
    onnxruntime from constant-folding. Only shape metadata changes.
    """
    initializer_names = {init.name for init in model.graph.initializer}
    kept_inputs = [value for value in model.graph.input if value.name not in initializer_names]
    del model.graph.input[:]
    model.graph.input.extend(kept_inputs)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            make_symbolic(dims[0], "batch")


class _NetworkRecogniser:
    """Shared input preparation; subclasses run the network on a prepared (N, 3, 112, 112) tensor."""

    def __init__(self, *, embedding_dim: int, rgb: bool = True, mean: float = 0.0, scale: float = 1.0) -> None:
        self.embedding_dim = embedding_dim
        self._rgb, self._mean, self._scale = rgb, mean, scale

    def embed(self, crops_bgr: np.ndarray) -> np.ndarray:
        if len(crops_bgr) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        tensor = to_input_tensor(crops_bgr, rgb=self._rgb, mean=self._mean, scale=self._scale)
        return np.asarray(self._forward(tensor), dtype=np.float32).reshape(len(crops_bgr), -1)

    def _forward(self, tensor: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxRuntimeRecogniser(_NetworkRecogniser):
    def __init__(self, model_path: Path, *, threads: int, **inputs: Any) -> None:
        super().__init__(**inputs)
        self._session = OnnxSession(model_path, threads=threads, edit=symbolic_batch)
        self._input_name = self._session.get_inputs()[0].name

    def _forward(self, tensor: np.ndarray) -> np.ndarray:
        (output,) = self._session.run(None, {self._input_name: tensor})
        return np.asarray(output)


class OpenCvDnnRecogniser(_NetworkRecogniser):
    def __init__(self, model_path: Path, *, threads: int, **inputs: Any) -> None:
        super().__init__(**inputs)
        self._net = cv2.dnn.readNetFromONNX(str(model_path))
        self._lock = threading.Lock()  # a cv2.dnn Net holds its input: one caller at a time
        if threads > 0:
            cv2.setNumThreads(threads)

    def _forward(self, tensor: np.ndarray) -> np.ndarray:
        with self._lock:
            self._net.setInput(tensor)
            return np.asarray(self._net.forward())
