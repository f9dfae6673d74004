"""blowup: PINNs for self-similar blowup profiles, with n-TangentProp high-order derivatives."""

__version__ = "0.1.0"
