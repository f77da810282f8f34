-- A singular test: returns the rows that break the rule.
select order_id, amount from {{ ref('fct_orders') }} where amount <= 0
