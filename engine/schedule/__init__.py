"""Scheduling: durations, send windows, holiday calendars, time zones, the send schedule, and the daemon's clock."""
