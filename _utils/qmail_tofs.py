"""
Overridable files, the template-formula way ("TOFS"), as data
(``__utils__``): the salt:// paths a file state of the formula tries, first
choice first (``qmail_tofs`` explains the layout and picks the first the
file server holds). Pure: the caller passes the settings (``tofs``), the
grain reader and ``plain``, the loader's ``qmail_validate.plain`` (the
loader gives ``_utils`` modules no ``__salt__`` or ``__utils__``).
"""


def candidates(files, key, tofs, grain, plain):
    """
    The salt:// paths tried for the file state ``key`` (its formula files
    ``files``, both checked by the caller), from the ``tofs`` settings
    (``qmail:tofs``, merged); ``grain`` reads one grain's value
    (``grains.get``).
    """
    plain("tofs")(tofs, "tofs")
    names = tofs["source_files"].get(key, files)
    if not names:
        plain("fail")(f"tofs:source_files:{key}", "empty: give at least one file name")
    top = f"{tofs['path_prefix']}/{tofs['dirs']['files']}"
    folders = []
    for grain_name in tofs["files_switch"]:
        value = grain(grain_name)
        if value and isinstance(value, str):
            folders.append(value)
    folders.append(tofs["dirs"]["default"])
    return [f"salt://{top}/{folder}/{name}" for folder in folders for name in names]
