# Regenerates reference.safetensors, the file tests/test_safetensors.c embeds (as
# reference_st[]) to check that nabla reads what the reference library
# writes. Needs the PyPI packages numpy and safetensors (not the suite):
#   python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install numpy safetensors
#   /tmp/stvenv/bin/python tests/data/make_reference.py tests/data/reference.safetensors
#   xxd -i tests/data/reference.safetensors
import sys

import numpy as np
from safetensors.numpy import save_file

tensors = {
    "weight": (np.arange(1, 7, dtype=np.float32) * 0.5).reshape(2, 3),
    "bias": np.array([-1.5, 0.0, 1e-300], dtype=np.float64),
    "scalar": np.array(3.25, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "ids": np.array([7, 8], dtype=np.int64),  # not loadable into nabla
    "half": np.array([1.0, 2.0], dtype=np.float16),  # nor this
    "na\u00efve/\u00e9": np.array([42.0], dtype=np.float32),
}
save_file(tensors, sys.argv[1], metadata={"format": "np", "note": "made by safetensors.numpy"})
