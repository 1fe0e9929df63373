"""The demo site's page: log in, send yourself a notification, watch events arrive live."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render

from notifications import notify


class SelfNotificationForm(forms.Form):
    title = forms.CharField(max_length=255, initial="Hello from the demo")
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


@login_required
def home(request):
    form = SelfNotificationForm(request.POST or None)
    wants_json = "application/json" in request.headers.get("Accept", "")
    if request.method == "POST" and form.is_valid():
        event = notify(request.user, form.cleaned_data["title"], body=form.cleaned_data["body"], actor=request.user)
        if wants_json:  # the page's script: it stays open and sees the event arrive
            return JsonResponse({"id": event.pk}, status=201)
        messages.success(request, "Sent. It arrives as soon as the transaction commits.")
        return redirect("home")
    if request.method == "POST" and wants_json:
        return JsonResponse({"errors": form.errors}, status=400)
    return render(request, "project/home.html", {"form": form})
