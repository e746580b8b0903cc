"""Scale out on Dask: predict a dask array lazily, score a folder of images, train data-parallel.

* `model.predict(x_dask)` returns a lazy dask array (`predict.predict`);
* `score_folder(model, folder, output)` / `convscope predict`: one Parquet row per image file;
* `model.fit(x, y, distribute=client)` or `distribute=DaskStrategy(client)`: each worker a replica
  and a shard of each global batch, gradients averaged, the update applied on the driver (`fit`).

Dask (`dask[array,distributed]`) and, for the scorer, pyarrow and Pillow are imported when used.
"""

from .fit import DaskStrategy
from .folder import score_folder
from .predict import predict

__all__ = ["DaskStrategy", "predict", "score_folder"]
