"""Salt's loaders, made cheaper for the processes of the tests that build
many of them (the unit tests' ``Loaders``, ``render_many.py``, the lab's
salt helper ``lab/saltclient.py``): ``install()``.
What is loaded and run is unchanged; only the listing of module folders is
remembered."""

import os


def install():
    """List each set of module folders once per process: Salt builds about
    twenty loaders per call, and each lists its folders again (``os.scandir``
    of every file of salt/modules, salt/states...: a quarter of a render).
    The listing depends only on the folders' contents, so a folder's mtime
    is part of the key: a call that syncs modules gets a new listing."""
    import salt.loader.lazy  # noqa: PLC0415 - Salt only when asked

    loader = salt.loader.lazy.LazyLoader
    refresh = loader._refresh_file_mapping  # noqa: SLF001
    cache = {}

    def mtime(path):
        try:
            return os.stat(path).st_mtime_ns
        except OSError:
            return None

    def refresh_once(self):
        key = (tuple((d, mtime(d)) for d in self.module_dirs), tuple(self.suffix_order),
               tuple(sorted(self.disabled)), tuple(self.static_modules or ()),
               self.opts.get("cython_enable", True), self.opts.get("enable_zip_modules", True),
               tuple(self.opts.get("optimization_order") or ()))
        if key not in cache:
            refresh(self)
            cache[key] = (dict(self.suffix_map), list(self.suffix_order),
                          dict(self.file_mapping))
        suffix_map, suffix_order, file_mapping = cache[key]
        self.suffix_map.update(suffix_map)
        self.suffix_order[:] = suffix_order
        self.file_mapping = dict(file_mapping)

    loader._refresh_file_mapping = refresh_once  # noqa: SLF001
