from django.http import HttpResponse
from django.urls import path


def index(request):
    return HttpResponse("chat rooms: open ws/chat/<room>/\n", content_type="text/plain")


urlpatterns = [path("", index)]
