"""The time-lapse: the stack's own schedules on a simulated clock for weeks, against moto in-process, with late
events and a cast of users whose truth is known, checked by an oracle (ARCHITECTURE.md, safety model 15).

- `clock`: the deployed schedules and Lambda environment (read from cdk.json through infra.config), the agenda
  of instants and the simulated clock (time-machine) that travels to each;
- `deliveries`: EventBridge's routing of the stack's rules, CloudTrail records built from the users' own calls
  and delivered late, EC2 state changes and spot warnings;
- `harness`: the account, the handlers invoked as EventBridge invokes them, metrics, notices and API calls;
- `cast`: the users, each a small script with a known truth;
- `oracle`: per resource, what must happen and by when, and what must never happen;
- `report`: the figures, as text and as a section of bench/RESULTS.md.

Run `python -m bench.timelapse --days 30 --seed N`.
"""
