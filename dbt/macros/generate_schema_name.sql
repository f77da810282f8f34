{#
  A dataops environment has a fixed layout (staging, marts, raw_*), the same in every
  branch: its database name carries the environment, not its schemas. So a model's
  custom schema is used as it is. dbt's default would build `staging_marts`, a schema
  the transformer may not create.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
