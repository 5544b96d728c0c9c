"""The capacity benchmark of issue 13 (entry point: bench/bench_capacity.py), in parts:

- upstream.py: a paced OpenAI-compatible fake upstream (asyncio, one ticker for every stream);
- client.py: the load generator, a separate process with raw HTTP/SSE/websocket clients;
- procs.py: starting and always stopping processes, and their CPU time from /proc;
- setups.py / prepare.py: our server (embedded or cross-process) and the LiteLLM peer;
- profile.py: py-spy sampling of the server and the top frames.
"""
