"""Read the tensors out of a pickled PyTorch file without running any of its code.

Some public checkpoints are whole pickled modules (OpenAI's dVAE `decoder.pkl` names the
`dall_e` package's classes) or carry training state next to the weights (a PyTorch Lightning
`.ckpt` with OmegaConf hyper-parameters). Unpickling them normally imports those packages and
calls their code. Here every global the pickle names is looked up in an allow-list: tensor
rebuilding and plain containers are real; the classes of the named packages become inert
stand-ins that only keep the state the pickle gives them; anything else is refused with an
error naming it.
"""
import collections
import pickle
import zipfile

import torch

# Rebuild functions and value types torch writes for tensors, and plain containers.
ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
}
# Protocol-2 pickles spell builtins the Python 2 way.
ALLOWED.update({("__builtin__", name): value for (module, name), value in list(ALLOWED.items())
                if module == "builtins"})
if hasattr(torch._utils, "_rebuild_parameter_with_state"):
    ALLOWED[("torch._utils", "_rebuild_parameter_with_state")] = torch._utils._rebuild_parameter_with_state
DTYPES = {"float16", "float32", "float64", "bfloat16", "int64", "int32", "uint8", "bool"}


class StandIn:
    """Takes the place of a class the pickle names: it keeps constructor arguments and state,
    and does nothing else."""

    qualified_name = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):  # a stand-in called as a function (REDUCE) stays inert
        return type(self)(*args, **kwargs)


class RefusedGlobal(pickle.UnpicklingError):
    pass


def _stand_in(module, name):
    return type(name, (StandIn,), {"qualified_name": f"{module}.{name}", "__module__": "training.upstream.safe_pickle"})


STORAGE_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
                  "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                  "ByteStorage": torch.uint8, "BoolStorage": torch.bool}


def _unpickler(path, stand_in_packages, storage):
    """An Unpickler that resolves globals by the allow-list above, standing in for classes of
    `stand_in_packages` (package prefixes), and reads tensor storages with `storage(key, dtype)`."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in ALLOWED:
                return ALLOWED[(module, name)]
            if module == "torch" and name in DTYPES:
                return getattr(torch, name)
            if module == "torch" and name in STORAGE_DTYPES:
                return STORAGE_DTYPES[name]
            if any(module == p or module.startswith(p + ".") for p in stand_in_packages):
                return _stand_in(module, name)
            raise RefusedGlobal(
                f"{path} names {module}.{name}, which is neither a tensor nor a class this reader stands in "
                f"for ({', '.join(sorted(stand_in_packages))}): refusing to load it, as that would run its code")

        def persistent_load(self, saved_id):
            kind, dtype, key, _location, _numel = saved_id
            if kind != "storage" or not isinstance(dtype, torch.dtype):
                raise RefusedGlobal(f"{path}: unexpected persistent record {saved_id!r}")
            return storage(key, dtype)

    return Unpickler


def load(path, stand_in_packages):
    """The unpickled object tree of `path` (PyTorch's zip format), tensors real, named packages'
    classes as StandIns. torch.load is not used: its `pickle_module` is ignored by some versions."""
    if not zipfile.is_zipfile(path):
        raise SystemExit(f"{path}: not a PyTorch zip checkpoint (torch.save since 1.6); re-save it with a current "
                         f"torch on a machine you trust, or give its state dict")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise SystemExit(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        cache = {}

        def storage(key, dtype):
            if key not in cache:
                data = bytearray(archive.read(f"{prefix}data/{key}"))
                flat = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
                cache[key] = flat.storage()
            return cache[key]

        with archive.open(pickles[0]) as f:
            return _unpickler(path, set(stand_in_packages), storage)(f, encoding="utf-8").load()


def module_tensors(root, prefix=""):
    """A pickled nn.Module tree (of StandIns) -> {dotted name: tensor}, as its state_dict would say."""
    out = collections.OrderedDict()
    state = getattr(root, "state", None)
    if not isinstance(state, dict):
        return out
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is not None:
                out[prefix + name] = tensor.detach() if isinstance(tensor, torch.Tensor) else tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_tensors(child, f"{prefix}{name}."))
    return out


def load_state_dict(path, stand_in_packages):
    """Tensors of a checkpoint: a plain or Lightning-style dict (`state_dict` inside), or a whole
    pickled module. Tries PyTorch's own tensors-only reader first."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = load(path, stand_in_packages)
    if isinstance(obj, StandIn):
        return module_tensors(obj)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{path}: neither a state dict nor a pickled module")
    return obj
