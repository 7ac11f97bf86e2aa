"""Registry entries name the functions they run as 'module:function', so
that reading a registry (the Snakefile checks every config against them)
imports none of the modules behind it, torch among them."""

import importlib


def function_at(reference):
    """The function a 'module:function' reference names, its module imported now."""
    module, function = reference.split(":")
    return getattr(importlib.import_module(module), function)
