from .hdf5 import DatasetError, dataset_views, load_dataset, write_dataset, D4RL_KEYS

__all__ = ["DatasetError", "dataset_views", "load_dataset", "write_dataset", "D4RL_KEYS"]
