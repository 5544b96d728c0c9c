"""The capacity benchmark of issue 13 (entry point: bench/bench_capacity.py), in parts:

- upstream.py: a paced OpenAI-compatible fake upstream (asyncio, one ticker for every stream);
- client.py (+ wire.py): the load generator, a separate process with raw HTTP/SSE/websocket clients;
- phase.py: one measured phase (CPU read from /proc before "go" and after the result);
- procs.py: starting and always stopping processes, and their CPU time from /proc;
- setups.py / prepare.py: our server (embedded or cross-process) and the LiteLLM peer;
- profile.py: py-spy sampling of the server and the top frames (also a CLI over recorded files);
- calibrate.py: how expensive CPU time is on the machine at the time; report.py: the tables.
"""
