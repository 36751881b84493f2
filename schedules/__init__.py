"""Cron schedules that invoke deployed functions, exactly once per tick (see ARCHITECTURE.md)."""
