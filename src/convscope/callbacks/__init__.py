"""Callbacks with Keras' names and hooks (`from convscope.callbacks import EarlyStopping`).

`core.py` holds the base class, the list `fit` drives and the callbacks Keras scripts
use most; each further callback has a file of its own.
"""

from .core import (Callback, CallbackList, CSVLogger, EarlyStopping, History, LearningRateScheduler,
                   ModelCheckpoint, ProgbarLogger, TerminateOnNaN, check_callbacks)
from .backup import BackupAndRestore
from .lambda_callback import LambdaCallback
from .reduce_lr import ReduceLROnPlateau
from .tensorboard import TensorBoard

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "TerminateOnNaN", "CSVLogger", "ProgbarLogger", "ReduceLROnPlateau", "LambdaCallback",
           "BackupAndRestore", "TensorBoard", "check_callbacks"]
