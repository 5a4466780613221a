// A grouped bar chart as a plain SVG string: one group per route, one bar per
// strategy, on a log scale (login is two orders of magnitude slower than a
// read, and a linear axis would hide it), with the value printed on each bar.

export interface ChartSeries {
  name: string
  colour: string
  /** One value per group; null where the series has no bar in that group. */
  values: Array<number | null>
}

export interface ChartInput {
  title: string
  subtitle: string
  groups: string[]
  series: ChartSeries[]
  yLabel: string
  xLabel: string
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

function formatValue (v: number): string {
  if (v >= 10_000) return `${(v / 1000).toFixed(1)}k`
  if (v >= 1000) return `${(v / 1000).toFixed(2)}k`
  if (v >= 100) return v.toFixed(0)
  return v.toFixed(1)
}

function formatTick (v: number): string {
  return v >= 1000 ? `${v / 1000}k` : String(v)
}

export function groupedBarChart (input: ChartInput): string {
  const width = 960
  const height = 520
  const margin = { top: 78, right: 24, bottom: 92, left: 84 }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom

  const values = input.series.flatMap((s) => s.values).filter((v): v is number => v !== null && v > 0)
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values))))
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values) * 1.05)))
  const y = (v: number) => margin.top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH

  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="${margin.left}" y="26" font-size="17" font-weight="600" fill="#111">${escapeXml(input.title)}</text>`)
  out.push(`<text x="${margin.left}" y="46" font-size="12" fill="#555">${escapeXml(input.subtitle)}</text>`)

  // Grid and y ticks: every decade labelled, 2..9 as faint lines.
  for (let decade = lo; decade <= hi; decade *= 10) {
    const yy = y(decade)
    out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="#ccc"/>`)
    out.push(`<text x="${margin.left - 8}" y="${(yy + 4).toFixed(1)}" text-anchor="end" fill="#333">${formatTick(decade)}</text>`)
    if (decade < hi) {
      for (let m = 2; m <= 9; m++) {
        const ym = y(decade * m)
        out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${ym.toFixed(1)}" y2="${ym.toFixed(1)}" stroke="#eee"/>`)
      }
    }
  }

  // Bars.
  const groupW = plotW / input.groups.length
  const barW = Math.min(44, (groupW * 0.8) / input.series.length)
  input.groups.forEach((group, g) => {
    const present = input.series.filter((s) => s.values[g] !== null && s.values[g] !== undefined && s.values[g]! > 0)
    const start = margin.left + g * groupW + (groupW - present.length * barW) / 2
    present.forEach((s, i) => {
      const v = s.values[g]!
      const x = start + i * barW
      const top = y(v)
      out.push(`<rect x="${(x + 2).toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(margin.top + plotH - top).toFixed(1)}" fill="${s.colour}"><title>${escapeXml(`${s.name}, ${group}: ${v.toFixed(1)} req/s`)}</title></rect>`)
      out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(top - 4).toFixed(1)}" text-anchor="middle" font-size="11" fill="#222">${formatValue(v)}</text>`)
    })
    out.push(`<text x="${(margin.left + g * groupW + groupW / 2).toFixed(1)}" y="${margin.top + plotH + 20}" text-anchor="middle" fill="#111">${escapeXml(group)}</text>`)
  })

  // Axes and their labels.
  out.push(`<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#333"/>`)
  out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="#333"/>`)
  out.push(`<text transform="translate(22 ${(margin.top + plotH / 2).toFixed(1)}) rotate(-90)" text-anchor="middle" fill="#111">${escapeXml(input.yLabel)}</text>`)
  out.push(`<text x="${(margin.left + plotW / 2).toFixed(1)}" y="${margin.top + plotH + 48}" text-anchor="middle" fill="#111">${escapeXml(input.xLabel)}</text>`)

  // Legend, bottom row.
  let lx = margin.left
  const ly = height - 20
  for (const s of input.series) {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${s.colour}"/>`)
    out.push(`<text x="${lx + 17}" y="${ly}" fill="#111">${escapeXml(s.name)}</text>`)
    lx += 40 + s.name.length * 6.6
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}
