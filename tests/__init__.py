"""The test suite: packages mirror assistants_app; shared harness in tests/support/, fakes of outside
systems in tests/fakes/, fixtures in tests/conftest.py."""

import pytest

# tests/conftest.py imports the support modules before pytest would register them as plugins:
# ask for their asserts to be rewritten (helpful failure messages) all the same.
pytest.register_assert_rewrite("tests.support")
