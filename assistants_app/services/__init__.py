"""The use cases, by concern. `api/`, `web/`, `admin/` and the management commands all call these;
they parse their input, call one of them and render the result. Every permission check and state
change happens here (run statuses only through runs/state.py).

- lookups: an owner's objects by id (another owner's answers 404, like a missing one), a user's
  live files, a thread's active run
- threads: threads and their messages; `lock_idle`, the one "lock the thread, refuse if a run is active"
- runs: starting runs (the one list of run parameters), tool outputs, cancelling, the per-user run cap
- tools: the one validator of tool definitions, tool_choice and tool_resources (API and admin)
- assistants: assistants, and the admin's retrieval uploads into the assistant's vector store
- files: the one writer of File rows (content sniffed, hashed, within the owner's storage quota),
  and what deleting files and threads removes
- vector_stores: stores, search, and the file_search part of tool_resources
- vector_store_files: a store's files (attach, attributes, text) and file batches
- chat: the chat page's use cases (one live thread per user, send, retry, stop, history)
- chat_assistants: which assistant answers in a conversation (the user's pick among those staff
  offer, the fallback to the default) and the tools an attachment gets
- keys: API keys (generation, hashing, revocation)

Nothing here imports api/, web/ or admin/, and this file imports nothing, so that importing one
concern never drags in the others.
"""
