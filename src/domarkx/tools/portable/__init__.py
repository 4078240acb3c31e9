"""Portable tools: plain functions with no domarkx imports.

They run wherever Python runs (in-process, in a Jupyter kernel, in a container),
which is why they take an explicit root directory and raise only standard
exceptions. The workspace plugins call them and turn failures into tool errors.

* :mod:`.files` - ``read_file``, ``write_file``, ``edit_file``, ``list_dir``
* :mod:`.shell` - ``run_command``
"""
