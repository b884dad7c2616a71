"""A toy method registered from outside ``src/methods`` (``ADSUITE_METHOD_MODULES=tests.toy_method.spec``).

It walks through docs/adding-a-method.md: a Lightning module, a ``MethodSpec``, a paper YAML, an
ablation grid and a reference CSV, and nothing else in the suite changes.
"""
