"""IXS phonon line shapes, elastic superlattice order and temperature series (CsCr3Sb5, arXiv 2410.16465).
Docs: ``docs/methods/ixs.md``."""

from zoo.ixs.model import K_BOLTZMANN_MEV, XI_CONVENTIONS, correlation_length, dho, dho_chi, order_parameter, superlattice_lorentzian
from zoo.ixs.qscan import fit_superlattice_scan, rlu_to_inverse_angstrom

__all__ = ["K_BOLTZMANN_MEV", "XI_CONVENTIONS", "IxsConfig", "IxsFitter", "phonon_anomaly_test", "correlation_length", "dho", "dho_chi", "order_parameter",
           "superlattice_lorentzian", "fit_superlattice_scan", "rlu_to_inverse_angstrom"]


def __getattr__(name: str):
    if name in ("IxsConfig", "IxsFitter", "phonon_anomaly_test"):
        from zoo.ixs import module

        return getattr(module, name)
    raise AttributeError(f"module 'zoo.ixs' has no attribute {name!r}")
