// Placeholders in canned replies: {customer_name}, {agent_name} and {shop_name} are filled in
// when an agent inserts the reply. Pure: the caller gives the values. A customer with no known
// name is addressed by a neutral word (values.neutral: "there", "您") rather than a gap; any
// other placeholder, known or not, without a value stays as typed.

export const PLACEHOLDERS = ['customer_name', 'agent_name', 'shop_name'];

/** expand('Hi {customer_name}', {customer_name, agent_name, shop_name, neutral}) */
export function expand(text, values) {
  return text.replace(/\{([a-z_]+)\}/g, (whole, key) => {
    if (!PLACEHOLDERS.includes(key)) return whole;
    const value = (values[key] ?? '').trim();
    if (value) return value;
    if (key === 'customer_name' && values.neutral) return values.neutral;
    return whole;
  });
}
