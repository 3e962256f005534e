"""The product brief's enums, each a ``str`` enum whose values are quantmoo's own names.

Because the values *are* the core's strings (``HardwareTarget.ARM_NEON == "arm_neon"``, the
profile name; ``QuantizationScheme.SYMMETRIC == "symmetric"``), a member can be passed
anywhere quantmoo takes a name, and nothing is translated twice.

=============================  ==========================================================
brief                          quantmoo
=============================  ==========================================================
``HardwareTarget.*``           hardware profile names (:func:`quantmoo.hardware.names`)
``QuantizationScheme.*``       ``symmetric``, ``asymmetric``, ``power_of_two``; ``AFFINE``
                               is an alias of ``ASYMMETRIC`` (unsigned range + zero-point
                               is the affine scheme), so ``AFFINE is ASYMMETRIC``
``QuantizationGranularity.*``  ``per_tensor``, ``per_channel``, ``per_group``
``CalibrationMethod.*``        ``min_max``, ``percentile``, ``mse``, ``entropy``
=============================  ==========================================================
"""
from __future__ import annotations

from enum import Enum

from ..errors import QuantmooError

__all__ = ["HardwareTarget", "QuantizationScheme", "QuantizationGranularity", "CalibrationMethod"]


class _NameEnum(str, Enum):
    """A str enum that also accepts its member names, case-insensitively ("ARM_NEON", "arm-neon")."""

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            for name, m in cls.__members__.items():   # includes aliases (AFFINE)
                if key in (m.value, name.lower()):
                    return m
        return None

    @classmethod
    def coerce(cls, value, field: str, owner: str = ""):
        """``cls(value)`` or a QuantmooError naming ``field`` and the allowed members."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            where = f" of {owner}" if owner else ""
            shown = ", ".join(f"{cls.__name__}.{n}" for n in cls.__members__)
            raise QuantmooError(f"The '{field}'{where} must be one of {{{shown}}} (or their values); "
                                f"got {value!r}") from None

    def __str__(self) -> str:  # f"{HardwareTarget.ARM_NEON}" -> "arm_neon", like the core's names
        return self.value


class HardwareTarget(_NameEnum):
    """The brief's hardware targets; each value is a quantmoo hardware profile name."""

    ARM_NEON = "arm_neon"
    ARM_DOT = "arm_dot"
    QUALCOMM_HEXAGON = "hexagon"
    APPLE_NEURAL_ENGINE = "apple_ane"
    NVIDIA_TENSORRT = "tensorrt"
    INTEL_VNNI = "intel_vnni"

    @property
    def profile_name(self) -> str:
        """The profile name (same as ``value``)."""
        return self.value

    def profile(self):
        """The :class:`~quantmoo.hardware.HardwareProfile` (``quantmoo.hardware.load(value)``)."""
        from ..hardware import load
        return load(self.value)


class QuantizationScheme(_NameEnum):
    """Weight/activation quantization schemes; ``AFFINE`` is an alias of ``ASYMMETRIC``."""

    ASYMMETRIC = "asymmetric"
    SYMMETRIC = "symmetric"
    POWER_OF_TWO = "power_of_two"
    AFFINE = "asymmetric"   # same value: an alias, QuantizationScheme.AFFINE is ASYMMETRIC

    @property
    def is_symmetric(self) -> bool:
        """True for schemes without a zero-point (symmetric, power-of-two)."""
        return self is not QuantizationScheme.ASYMMETRIC



class QuantizationGranularity(_NameEnum):
    """How many scales a weight tensor gets: one, one per output channel, one per group."""

    PER_TENSOR = "per_tensor"
    PER_CHANNEL = "per_channel"
    PER_GROUP = "per_group"


class CalibrationMethod(_NameEnum):
    """The global activation-range calibration method."""

    MIN_MAX = "min_max"
    PERCENTILE = "percentile"
    MSE = "mse"
    ENTROPY = "entropy"
