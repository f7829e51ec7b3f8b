"""The public outcomes explorer (`c2c explore`): a read-only web page over the public_*
views only, with a summary, a dashboard per measure, a query builder and freshness.
``app.make_app`` builds it over a ``source.open_source``; nothing is imported here, so that
the sink's web port (which answers the explorer's reads) loads no web framework."""
