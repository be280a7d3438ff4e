from django import forms
from django.contrib import admin
from django.utils.html import format_html_join
from rest_framework.exceptions import ValidationError as ApiValidationError

from funnels.models import Funnel
from funnels.serializers import validate_steps


class FunnelForm(forms.ModelForm):
    class Meta:
        model = Funnel
        fields = ["project", "name", "steps", "conversion_window", "order"]

    def clean_steps(self):
        try:
            return validate_steps(self.cleaned_data["steps"])
        except ApiValidationError as exc:
            raise forms.ValidationError(str(exc.detail)) from None


@admin.register(Funnel)
class FunnelAdmin(admin.ModelAdmin):
    form = FunnelForm
    list_display = ["name", "project", "step_summary", "conversion_window", "order", "updated_at"]
    list_filter = ["project", "order"]
    search_fields = ["name", "project__name"]
    readonly_fields = ["readable_steps", "created_at", "updated_at"]
    fields = ["project", "name", "steps", "readable_steps", "conversion_window", "order", "created_at", "updated_at"]

    @admin.display(description="steps")
    def step_summary(self, obj):
        return " → ".join(step.get("eventName", "?") for step in obj.steps or [])

    @admin.display(description="steps, readable")
    def readable_steps(self, obj):
        def describe(step):
            parts = [step.get("eventName", "?")]
            if step.get("filters"):
                parts.append(f"where {step['filters']}")
            if step.get("timeWindow"):
                parts.append(f"within {step['timeWindow']} s of the previous step")
            return " ".join(parts)

        return format_html_join("", "<div>{}. {}</div>", ((i, describe(s)) for i, s in enumerate(obj.steps or [], 1)))
