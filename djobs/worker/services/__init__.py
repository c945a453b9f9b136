"""Fleet-wide duties, run only by the elected leader: recovering silent workers' jobs (`rescuer`), firing
schedules (`scheduler`), fan-out deadlines and backstops (`deadlines`), trimming the event log
(`trimmer`), deleting finished jobs past their retention (`retention`). Leadership itself is in `elector`."""
