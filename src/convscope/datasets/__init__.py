"""Datasets with Keras' `load_data()` interface.

`mnist` and `fashion_mnist` read the standard files (or download them, checked
by SHA-256); `cifar10` and `cifar100` read Keras' python-version archives
without unpickling anything (or download them, checked by SHA-256); `digits`
(real 8×8 handwritten digits) and `shapes` (seed 002's 8×8 triangles, squares
and circles) work offline, out of the box.
"""

from . import cifar10, cifar100, digits, fashion_mnist, mnist, shapes

__all__ = ["cifar10", "cifar100", "digits", "fashion_mnist", "mnist", "shapes"]
