import json

from channels.generic.websocket import AsyncWebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):
    """Echoes each message back to its room (no channel layer: one process, one room member)."""

    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room_name"]
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        message = json.loads(text_data or "{}").get("message", "")
        await self.send(text_data=json.dumps({"room": self.room, "message": message}))
