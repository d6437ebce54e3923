"""Case memory: text encoders, the faiss index and case bank, case keys."""
