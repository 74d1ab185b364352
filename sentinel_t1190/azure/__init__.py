"""The only package that imports ``azure.*``: credentials, clouds, ARM, Logs, Resource Graph.

Every Azure SDK exception is caught at this boundary and re-raised as one of
:mod:`sentinel_t1190.errors` (``from`` the original).
"""
