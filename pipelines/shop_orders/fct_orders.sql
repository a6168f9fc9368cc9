-- One row per order; {{ raw }} is this partition's loaded (and PII-masked) source data.
SELECT
    order_id,
    customer_id,
    email AS customer_email_hash,
    amount,
    status,
    CAST(created_at AS DATE) AS order_date,
    created_at,
    updated_at
FROM {{ raw }}
