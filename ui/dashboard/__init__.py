"""The analysts' dashboard (Gradio): :func:`ui.dashboard.app.build_dashboard` and :func:`ui.dashboard.app.serve`."""
