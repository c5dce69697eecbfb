"""Salt made cheaper for the processes of the tests (the unit tests'
``Loaders``, ``render_many.py``, the lab's salt helper ``lab/saltclient.py``)
and for the lab's salt-masters (``lab/master_site``): ``install()``, and
``install_client()`` for the helper.
What is loaded and run is unchanged: a folder's listing is remembered, the
truth of an opts mapping is found without counting it, and the ``salt``
command waits on the event bus for its returns instead of polling it. Lab
hosts, where the formula runs, run Salt as it is."""

import os


def install():
    """Both remedies below, once per process."""
    _list_module_folders_once()
    _opts_truth_without_counting()


def install_client():
    """``install()``, and the ``salt`` command's returns awaited, not polled."""
    install()
    _returns_awaited_not_polled()


def _list_module_folders_once():
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


def _opts_truth_without_counting():
    """Salt 3008's copy-on-write opts (``salt.utils.optsdict.OptsDict``)
    has no ``__bool__``, so Python asks ``__len__``, which tests each of
    the ~600 keys through the whole parent chain; ``OptsDict.__init__``
    asks it of its parent (``if parent and ...``) for every copy, and Salt
    copies opts for each loader: a fifth of a render in
    ``render_many.py``. Non-empty means one live key, found at the first."""
    import salt.utils.optsdict  # noqa: PLC0415 - Salt only when asked

    opts_dict = salt.utils.optsdict.OptsDict
    if "__bool__" in vars(opts_dict):
        return  # a Salt that has its own

    def truth(self):
        with self._ensure_lock():  # noqa: SLF001
            return any(key in self for key in self._get_all_keys())  # noqa: SLF001

    opts_dict.__bool__ = truth


#: How long the ``salt`` command waits on the bus for the next event of its
#: job before it looks at its timeouts again (Salt: no wait, then 10 ms asleep).
RETURN_WAIT = 0.05


def _returns_awaited_not_polled():
    """While a job runs, ``LocalClient.get_iter_returns`` asks the event bus
    for a return without waiting (``get_returns_no_block``), then sleeps 10
    ms: a hundred wake-ups a second for as long as the command lasts, ~5% of
    a core for each command waiting on an apply (measured in the lab helper).
    Here each ask waits on the bus up to ``RETURN_WAIT`` for the job's next
    event: an event is taken the moment it comes, the same events in the
    same order, and the timeouts are looked at as before between asks."""
    import salt.client  # noqa: PLC0415 - Salt only when asked

    local_client = salt.client.LocalClient

    def get_returns_no_block(self, tag, match_type=None):
        while True:
            yield self.event.get_event(wait=RETURN_WAIT, tag=tag, match_type=match_type,
                                       full=True, no_block=False,
                                       auto_reconnect=self.auto_reconnect)

    local_client.get_returns_no_block = get_returns_no_block
