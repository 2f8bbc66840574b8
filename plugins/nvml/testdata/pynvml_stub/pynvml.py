"""A minimal stand-in for nvidia-ml-py's pynvml, for dry runs of scripts/gpu-check.sh against the
simulated NVML library (testdata/fakenvml). It implements only the calls that script makes, with
ctypes against the library named by $LEM_FAKE_NVML_LIB, and pynvml's signatures for them."""
import ctypes
import os

_lib = None
NVML_FI_DEV_POWER_INSTANT = 186


class NVMLError(Exception):
    def __init__(self, code):
        super().__init__(f"NVML error {code}")
        self.value = code


class _Value(ctypes.Union):
    _fields_ = [("dVal", ctypes.c_double), ("uiVal", ctypes.c_uint), ("ulVal", ctypes.c_ulong),
                ("ullVal", ctypes.c_ulonglong), ("sllVal", ctypes.c_longlong), ("siVal", ctypes.c_int),
                ("usVal", ctypes.c_ushort)]


class c_nvmlFieldValue_t(ctypes.Structure):
    _fields_ = [("fieldId", ctypes.c_uint), ("scopeId", ctypes.c_uint), ("timestamp", ctypes.c_longlong),
                ("latencyUsec", ctypes.c_longlong), ("valueType", ctypes.c_uint), ("nvmlReturn", ctypes.c_uint),
                ("value", _Value)]


def _check(ret):
    if ret != 0:
        raise NVMLError(ret)


def nvmlInit():
    global _lib
    _lib = ctypes.CDLL(os.environ["LEM_FAKE_NVML_LIB"])
    _check(_lib.nvmlInit_v2())


def nvmlShutdown():
    _check(_lib.nvmlShutdown())


def nvmlDeviceGetHandleByIndex(i):
    h = ctypes.c_void_p()
    _check(_lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h)))
    return h


def _str(fn, h=None):
    buf = ctypes.create_string_buffer(96)
    _check(fn(buf, ctypes.c_uint(96)) if h is None else fn(h, buf, ctypes.c_uint(96)))
    return buf.value.decode()


def nvmlDeviceGetUUID(h):
    return _str(_lib.nvmlDeviceGetUUID, h)


def nvmlDeviceGetName(h):
    return _str(_lib.nvmlDeviceGetName, h)


def nvmlSystemGetDriverVersion():
    return _str(_lib.nvmlSystemGetDriverVersion)


def nvmlDeviceGetHandleByUUID(uuid):
    n = ctypes.c_uint()
    _check(_lib.nvmlDeviceGetCount_v2(ctypes.byref(n)))
    for i in range(n.value):
        h = nvmlDeviceGetHandleByIndex(i)
        if nvmlDeviceGetUUID(h) == (uuid.decode() if isinstance(uuid, bytes) else uuid):
            return h
    raise NVMLError(6)


def nvmlDeviceGetTotalEnergyConsumption(h):
    v = ctypes.c_ulonglong()
    _check(_lib.nvmlDeviceGetTotalEnergyConsumption(h, ctypes.byref(v)))
    return v.value


def nvmlDeviceGetEnforcedPowerLimit(h):
    v = ctypes.c_uint()
    _check(_lib.nvmlDeviceGetEnforcedPowerLimit(h, ctypes.byref(v)))
    return v.value


def nvmlDeviceGetPersistenceMode(h):
    v = ctypes.c_uint()
    _check(_lib.nvmlDeviceGetPersistenceMode(h, ctypes.byref(v)))
    return v.value


def nvmlDeviceGetFieldValues(h, ids):
    arr = (c_nvmlFieldValue_t * len(ids))()
    for k, fid in enumerate(ids):
        arr[k].fieldId = fid
    _check(_lib.nvmlDeviceGetFieldValues(h, ctypes.c_int(len(ids)), arr))
    return list(arr)
