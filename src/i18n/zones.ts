const known = new Map<string, boolean>();

/** Whether the runtime knows an IANA time zone (or alias, such as `UTC`) by this name. Remembered per name. */
export function validTimeZone(zone: string): boolean {
  let valid = known.get(zone);
  if (valid === undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: zone });
      valid = true;
    } catch {
      valid = false;
    }
    if (known.size > 1000) known.clear();
    known.set(zone, valid);
  }
  return valid;
}
