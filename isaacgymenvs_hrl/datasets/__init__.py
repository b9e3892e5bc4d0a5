from .hdf5 import DatasetError, load_dataset, write_dataset, D4RL_KEYS

__all__ = ["DatasetError", "load_dataset", "write_dataset", "D4RL_KEYS"]
