"""Widgets of the main screen, one module per screen region.

`overview` is the top row (queues, workers, schedules), `jobs` the jobs table and its filter bar, `events`
the live event log, `status` the connection line above the footer. `table.LiveTable` is their common base.
"""
