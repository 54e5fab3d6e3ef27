"""Streamlit helpers shared by the pages; the engine stays in rag/."""
