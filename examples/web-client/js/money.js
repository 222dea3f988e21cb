// Amounts travel in minor units (cents) as integers; people read and type
// them in major units with the currency's own number of decimals.

function formatter(currency) {
  return new Intl.NumberFormat(undefined, { style: 'currency', currency });
}

export function decimalsOf(currency) {
  try {
    return formatter(currency).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

export function formatMinor(amount, currency) {
  try {
    return formatter(currency).format(amount / 10 ** decimalsOf(currency));
  } catch {
    return `${amount} ${currency}`;
  }
}

// "25.5" in EUR → 2550. Returns null for anything that is not a plain decimal
// with at most the currency's decimals (the gateway checks the rest).
export function toMinor(text, currency) {
  const digits = decimalsOf(currency);
  const m = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(text);
  if (!m) return null;
  const fraction = m[2] ?? '';
  if (fraction.length > digits) return null;
  return Number(m[1]) * 10 ** digits + Number(fraction.padEnd(digits, '0') || '0');
}
