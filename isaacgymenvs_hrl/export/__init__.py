"""Export trained policies (flat, high level, LLC, or the whole hierarchy) to ONNX / TorchScript."""
from .exporter import FORMATS, PARTS, build_part, export_policy, metadata_path, sha256
from .run import ExportError, TrainedRun, build_task, load_run, policy_from_run
from .runtime import ExportedPolicy, ObservationMismatch, read_metadata

__all__ = ["FORMATS", "PARTS", "build_part", "export_policy", "metadata_path", "sha256", "ExportError",
           "TrainedRun", "build_task", "load_run", "policy_from_run", "ExportedPolicy",
           "ObservationMismatch", "read_metadata"]
