"""The project's README: how to run it, what each page does, every setting."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

README = Path(__file__).resolve().parent.parent / "README.md"

if README.is_file():
    st.markdown(README.read_text(encoding="utf-8"))
else:
    st.info("README.md is not next to the app.")
