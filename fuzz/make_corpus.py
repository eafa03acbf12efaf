#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/:
small valid files of each format and the edge cases the readers must
refuse. Run from anywhere; the files are committed (keep them small)."""
import gzip
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


# ---- IDX ----
def idx(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


put("idx", "u8_2x3", idx(0x08, [2, 3], bytes([0, 1, 2, 127, 128, 255])))
put("idx", "u8_2x3.gz", gz(idx(0x08, [2, 3], bytes([0, 1, 2, 127, 128, 255]))))
put("idx", "i8_3", idx(0x09, [3], bytes([0x80, 0xFF, 5])))
put("idx", "i16_2.gz", gz(idx(0x0B, [2], struct.pack(">hh", -32768, 258))))
put("idx", "i32_2", idx(0x0C, [2], struct.pack(">ii", -2, 65536)))
put("idx", "f32_3", idx(0x0D, [3], struct.pack(">fff", 1.5, -10, float("nan"))))
put("idx", "f64_2.gz", gz(idx(0x0E, [2], struct.pack(">dd", 3.141592653589793, float("inf")))))
put("idx", "scalar", idx(0x08, [], bytes([7])))
put("idx", "empty_0x28x28", idx(0x08, [0, 28, 28], b""))
put("idx", "eight_dims", idx(0x08, [1, 2, 1, 2, 1, 1, 2, 1], bytes(range(8))))
put("idx", "images_3x28x28.gz", gz(idx(0x08, [3, 28, 28], bytes((i * 7) % 256 for i in range(3 * 784)))))
put("idx", "labels_10", idx(0x08, [10], bytes(range(10))))
put("idx", "trailing", idx(0x08, [2], bytes([1, 2, 3])))
put("idx", "truncated", idx(0x08, [4], bytes([1, 2])))
put("idx", "bad_magic", bytes([0, 1, 8, 1, 0, 0, 0, 1, 9]))
put("idx", "bad_type", bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 9]))
put("idx", "nine_dims", bytes([0, 0, 8, 9]) + b"\0\0\0\1" * 9 + b"x")
put("idx", "dims_overflow", idx(0x08, [1, 0xFFFFFFFF, 0xFFFFFFFF, 0], b""))
put("idx", "tera_claim", idx(0x08, [65535, 65535, 255], bytes(6)))
put("idx", "tera_claim.gz", gz(idx(0x08, [65535, 65535, 255], bytes(6))))
put("idx", "claims_64M.gz", gz(idx(0x08, [(64 << 20) + 1], bytes(1000))))
good = gz(idx(0x08, [100], bytes(100)))
put("idx", "gz_bad_crc", good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:])
put("idx", "gz_cut", good[: len(good) // 2])
raw = idx(0x08, [6], bytes(range(6)))
put("idx", "gz_two_members", gz(raw[:5]) + gz(raw[5:]))
put("idx", "empty_file", b"")

# ---- safetensors ----
def st(entries, data, meta="nabla", pad=True):
    """entries: [(name, dtype, shape, begin, end)]; meta: "nabla" (format 1
    and the right CRC), None, or a dict written as it is."""
    h = {}
    if meta == "nabla":
        h["__metadata__"] = {"nabla_format": "1", "nabla_crc32": "%08x" % zlib.crc32(data)}
    elif meta is not None:
        h["__metadata__"] = meta
    for name, dtype, shape, b, e in entries:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
    text = json.dumps(h, separators=(",", ":"), ensure_ascii=False).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
f64 = lambda *v: struct.pack("<%dd" % len(v), *v)
data = f32(1, 2, 3) + f64(-1.5, 2.5) + f32(7) + f32(1, 2, 3, 4, 5, 6)
ents = [("t", "F32", [3], 0, 12), ("a", "F64", [2], 12, 28), ("s", "F32", [], 28, 32),
        ("w", "F32", [2, 3], 32, 56)]
put("safetensors", "set", st(ents, data))
put("safetensors", "set_no_metadata", st(ents, data, meta=None))
put("safetensors", "set_f64", st([("t", "F64", [3], 0, 24), ("w", "F64", [2, 3], 24, 72)],
                                 f64(1, 2, 3) + f64(*range(6))))
mdata = f32(*range(6)) + f32(0.5, -0.5)
ment = [("dense.kernel", "F32", [3, 2], 0, 24), ("dense.bias", "F32", [2], 24, 32)]
put("safetensors", "model", st(ment, mdata))
put("safetensors", "model_reordered", st(ment[::-1], mdata[24:] + mdata[:24]))
put("safetensors", "model_torch_style", st(sorted(ment), mdata, meta={"format": "pt"}))
put("safetensors", "model_extra", st(ment + [("dense_1.bias", "F32", [1], 32, 36)], mdata + f32(9)))
put("safetensors", "model_bad_crc", st(ment, mdata, meta={"nabla_format": "1", "nabla_crc32": "00000000"}))
put("safetensors", "model_format_2", st(ment, mdata, meta={"nabla_format": "2"}))
with open(os.path.join(HERE, "..", "tests", "data", "reference.safetensors"), "rb") as f:
    put("safetensors", "reference", f.read())
put("safetensors", "empty", st([], b""))
put("safetensors", "empty_no_pad", st([], b"", meta=None, pad=False))
put("safetensors", "overlap", st([("a", "F32", [2], 0, 8), ("t", "F32", [3], 0, 12)], f32(1, 2, 3), meta=None))
put("safetensors", "hole", st([("t", "F32", [1], 0, 4), ("u", "F32", [1], 8, 12)], f32(1, 2, 3), meta=None))
put("safetensors", "trailing", st([("t", "F32", [2], 0, 8)], f32(1, 2, 3), meta=None))
put("safetensors", "numel_overflow", st([("t", "F32", [0, 4294967295, 4294967295, 2], 0, 0)], b"", meta=None))
put("safetensors", "nine_dims", st([("t", "F32", [1] * 8 + [3], 0, 12)], f32(1, 2, 3), meta=None))
put("safetensors", "other_dtypes", st([("t", "F32", [3], 0, 12), ("h", "F16", [2], 12, 16),
                                       ("b", "BF16", [1], 16, 18), ("i", "I64", [1], 18, 26),
                                       ("q", "Q4", [2], 26, 26)], f32(1, 2, 3) + bytes(14), meta=None))
put("safetensors", "escapes", struct.pack("<Q", 60) +
    b'{"\\u0074":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}'.ljust(60) + f32(1, 2, 3))
put("safetensors", "header_claim_huge", struct.pack("<Q", 1 << 40) + b"{}")
put("safetensors", "deep_metadata", st([], b"", meta={"a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}))

# ---- CSV ----
csvs = {
    "header": b"sepal length,sepal width,label\n5.1,3.5,0\n4.9,3.0,0\n6.2,2.9,1\n",
    "no_header": b"7,1,2\n8,3,4",
    "crlf_bom": b"\xef\xbb\xbfa,b,c\r\n1.5, 2,0\r\n -3e2 ,\t4.25 , 1\r\n\r\n\n",
    "numbers": b"0x10,1e-3,inf,-nan,1e38\n-0,.5,5.,+7,1E+2\n",
    "too_big": b"1,2\n3,1e39\n",
    "blank_middle": b"1,2,3\n\n4,5,6\n",
    "ragged": b"1,2,3\n4,5\n",
    "empty_cell": b"1,2,3\n4,,6\n",
    "bad_cell": b"a,b,c\n1,2,3\n4,x5,6\n",
    "quoted": b'1,2\n3,"4"\n',
    "one_column": b"1\n2\n",
    "header_only": b"a,b,c\n",
    "long_cell": b"1,2\n3," + b"1234567890" * 6 + b"x\n",
    "nul": b"1,2\n3\x00,4\n",
    "empty_file": b"",
}
for name, text in csvs.items():
    put("csv", name, text)
