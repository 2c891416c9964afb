"""Reading what users bring: catalog and config.json models (:mod:`.catalog`), the request (:mod:`.request`)."""
