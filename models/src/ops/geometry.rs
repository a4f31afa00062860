//! The sliding-window geometry shared by convolution and pooling.

/// A square-stride, square-padding window over an `[N, H, W, C]` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Step between windows, in both directions.
    pub stride: usize,
    /// Zero padding on each side, in both directions.
    pub padding: usize,
}

impl Window {
    /// Output height and width, or `None` when the window does not fit the padded input.
    pub fn output(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.stride == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some((
            (hp - self.kh) / self.stride + 1,
            (wp - self.kw) / self.stride + 1,
        ))
    }

    /// The input coordinate of window offset `k` at output coordinate `o` along an axis of
    /// `len` (height or width), or `None` where the window covers padding.
    #[inline]
    pub fn source(&self, o: usize, k: usize, len: usize) -> Option<usize> {
        let i = (o * self.stride + k) as isize - self.padding as isize;
        (i >= 0 && (i as usize) < len).then_some(i as usize)
    }
}
