"""The websocket edge: protocol, authorization, streaming policy, dispatch to the workers."""
