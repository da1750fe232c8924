"""Modality-specific IOD content: the CT Image, MR Image, CR Image, US Image and SC Image modules,
image geometry consistent across a series, and the pixels of each instance.

A SeriesSource fills the series-level attributes once, then each instance's attributes and
pixels; it never encodes or writes (encoding.py does).
"""

from __future__ import annotations

import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence

from . import pixels
from .modules import add_frame_of_reference, add_image_pixel, decimal_string, shifted_time
from .patients import Patient, patient_rng
from .studies import SeriesPlan, StudyPlan

AXIAL = ["1", "0", "0", "0", "1", "0"]  # ImageOrientationPatient of an axial slice, head-first supine


class SeriesSource:
    """Fills one series: `add_series_attributes` once, then `add_instance` per instance (1-based)."""

    seconds_per_instance = 1.0

    def __init__(self, patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int) -> None:
        self.patient, self.study, self.series = patient, study, series
        self.rng = patient_rng(
            seed, patient.index, f"{study.namespace}/pixels/{study.index}/{series.SeriesNumber}"
        )

    def add_series_attributes(self, ds: Dataset) -> None:
        raise NotImplementedError

    def add_instance(self, ds: Dataset, instance_number: int) -> np.ndarray:
        """Set the attributes that change per instance and return its pixels (Rows × Columns [× 3])."""
        raise NotImplementedError


class _CrossSectionalSource(SeriesSource):
    """CT and MR: a stack of parallel axial slices sharing one Frame of Reference."""

    field_of_view_mm = 350.0
    slice_thickness_mm = 5.0
    slice_spacing_mm = 5.0
    first_slice_z_mm = 0.0
    templates: np.ndarray
    noise: pixels.Int16Array

    def __init__(self, patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int) -> None:
        super().__init__(patient, study, series, seed)
        self.noise_start = int(self.rng.integers(pixels.NOISE_MARGIN))

    def pixel_spacing(self) -> float:
        return self.field_of_view_mm / self.series.Columns

    def add_geometry(self, ds: Dataset) -> None:
        add_frame_of_reference(ds, self.series)
        ds.PatientPosition = "HFS"
        spacing = self.pixel_spacing()
        ds.PixelSpacing = [decimal_string(spacing), decimal_string(spacing)]
        ds.ImageOrientationPatient = AXIAL
        ds.SliceThickness = decimal_string(self.slice_thickness_mm)

    def add_instance(self, ds: Dataset, instance_number: int) -> np.ndarray:
        index = instance_number - 1
        spacing = self.pixel_spacing()
        corner = -self.field_of_view_mm / 2 + spacing / 2  # centre of the first transmitted pixel
        z = self.first_slice_z_mm - index * self.slice_spacing_mm
        ds.ImagePositionPatient = [decimal_string(corner), decimal_string(corner), decimal_string(z)]
        ds.SliceLocation = decimal_string(z)
        level = index * pixels.TEMPLATE_COUNT // max(1, self.series.instances)
        # A stride coprime with NOISE_MARGIN: slices that share a template get distinct noise windows.
        offset = (self.noise_start + index * 37) % pixels.NOISE_MARGIN
        return pixels.vary(self.templates[level], self.noise, offset)


class CTSource(_CrossSectionalSource):
    seconds_per_instance = 0.5

    def __init__(self, patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int) -> None:
        super().__init__(patient, study, series, seed)
        coverage_mm = 300.0
        self.slice_thickness_mm = max(
            s for s in (0.625, 1.0, 1.25, 2.5, 5.0) if s <= max(0.625, coverage_mm / series.instances)
        )
        self.slice_spacing_mm = self.slice_thickness_mm
        self.field_of_view_mm = 360.0
        self.first_slice_z_mm = -50.0 - 10.0 * patient.body_variant
        self.templates = pixels.ct_templates(series.Rows, series.Columns, patient.body_variant)
        self.noise = pixels.noise_pool(self.rng, series.Rows, series.Columns, 12.0, unsigned=False)
        self.lung_kernel = "Lung" in series.protocol.SeriesDescription

    def add_series_attributes(self, ds: Dataset) -> None:
        self.add_geometry(ds)
        add_image_pixel(
            ds,
            rows=self.series.Rows,
            columns=self.series.Columns,
            samples_per_pixel=1,
            photometric_interpretation="MONOCHROME2",
            bits_allocated=16,
            bits_stored=16,
            signed=True,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.RescaleIntercept = str(pixels.CT_RESCALE_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.KVP = "120"
        ds.ScanOptions = "HELIX"
        ds.DataCollectionDiameter = "500"
        ds.ReconstructionDiameter = decimal_string(self.field_of_view_mm)
        ds.DistanceSourceToDetector = "1085.6"
        ds.DistanceSourceToPatient = "595"
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = "160"
        ds.RotationDirection = "CW"
        ds.ExposureTime = "500"
        ds.XRayTubeCurrent = 220
        ds.Exposure = 110
        ds.FilterType = "FLAT"
        ds.GeneratorPower = 26
        ds.FocalSpots = ["1.2"]
        ds.ConvolutionKernel = "B70f" if self.lung_kernel else "B30f"
        ds.RevolutionTime = 0.5
        ds.SingleCollimationWidth = 0.6
        ds.TotalCollimationWidth = 38.4
        ds.SpiralPitchFactor = 1.0
        ds.CTDIvol = 6.8
        phantom = Dataset()
        phantom.CodeValue = "113691"
        phantom.CodingSchemeDesignator = "DCM"
        phantom.CodeMeaning = "IEC Body Dosimetry Phantom"
        ds.CTDIPhantomTypeCodeSequence = Sequence([phantom])
        ds.ContrastBolusAgent = "Iohexol 350 mg/ml"
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusVolume = "80"
        ds.WindowCenter, ds.WindowWidth = ["-600", "1500"] if self.lung_kernel else ["40", "400"]
        ds.WindowCenterWidthExplanation = "LUNG" if self.lung_kernel else "MEDIASTINUM"


class MRSource(_CrossSectionalSource):
    seconds_per_instance = 12.0
    field_of_view_mm = 230.0
    slice_thickness_mm = 5.0
    slice_spacing_mm = 6.0

    def __init__(self, patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int) -> None:
        super().__init__(patient, study, series, seed)
        self.weighting = "T2" if series.protocol.key == "MR_T2" else "T1"
        self.first_slice_z_mm = 60.0 - 4.0 * patient.body_variant
        self.templates = pixels.mr_templates(series.Rows, series.Columns, self.weighting)
        self.noise = pixels.noise_pool(self.rng, series.Rows, series.Columns, 20.0, unsigned=True)

    def add_series_attributes(self, ds: Dataset) -> None:
        self.add_geometry(ds)
        add_image_pixel(
            ds,
            rows=self.series.Rows,
            columns=self.series.Columns,
            samples_per_pixel=1,
            photometric_interpretation="MONOCHROME2",
            bits_allocated=16,
            bits_stored=12,
            signed=False,
        )
        t2 = self.weighting == "T2"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = ["SK", "SP"] if t2 else ["SP"]
        ds.ScanOptions = ["FS"] if t2 else ""
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = "*tse2d1_15" if t2 else "*se2d1"
        ds.AngioFlag = "N"
        ds.RepetitionTime = "4000" if t2 else "500"
        ds.EchoTime = "100" if t2 else "10"
        ds.EchoTrainLength = 15 if t2 else 1
        ds.NumberOfAverages = "2"
        ds.ImagingFrequency = "63.676"
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = "1.5"
        ds.SpacingBetweenSlices = decimal_string(self.slice_spacing_mm)
        phase_steps = self.series.Rows * 3 // 4
        ds.NumberOfPhaseEncodingSteps = phase_steps
        ds.PercentSampling = "100"
        ds.PercentPhaseFieldOfView = "100"
        ds.PixelBandwidth = "130"
        ds.ReceiveCoilName = "Head_12"
        ds.TransmitCoilName = "Body"
        ds.AcquisitionMatrix = [0, self.series.Columns, phase_steps, 0]
        ds.InPlanePhaseEncodingDirection = "ROW"
        ds.FlipAngle = "150" if t2 else "90"
        ds.VariableFlipAngleFlag = "N"
        ds.SAR = "0.8"
        ds.dBdt = "0"
        ds.WindowCenter, ds.WindowWidth = ("1800", "3600") if t2 else ("1500", "3000")


class CRSource(SeriesSource):
    seconds_per_instance = 30.0

    def __init__(self, patient: Patient, study: StudyPlan, series: SeriesPlan, seed: int) -> None:
        super().__init__(patient, study, series, seed)
        self.lateral = series.protocol.key == "CR_LAT"

    def add_series_attributes(self, ds: Dataset) -> None:
        add_image_pixel(
            ds,
            rows=self.series.Rows,
            columns=self.series.Columns,
            samples_per_pixel=1,
            photometric_interpretation="MONOCHROME2",
            bits_allocated=16,
            bits_stored=12,
            signed=False,
        )
        spacing = decimal_string(430.0 / self.series.Rows)
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.ViewPosition = "LL" if self.lateral else "PA"
        ds.PatientOrientation = ["P", "F"] if self.lateral else ["L", "F"]
        ds.KVP = "125"
        ds.PlateID = f"PL{self.series.SeriesNumber:04d}"
        ds.DistanceSourceToDetector = "1800"
        ds.ExposureTime = 12
        ds.XRayTubeCurrent = 250
        ds.Exposure = 3
        ds.ImagerPixelSpacing = [spacing, spacing]
        ds.CassetteOrientation = "PORTRAIT"
        ds.CassetteSize = "35CMX43CM"
        ds.Sensitivity = "200"
        ds.WindowCenter, ds.WindowWidth = "2048", "4096"

    def add_instance(self, ds: Dataset, instance_number: int) -> np.ndarray:
        return pixels.radiograph(self.series.Rows, self.series.Columns, self.lateral, self.rng)


class USSource(SeriesSource):
    seconds_per_instance = 20.0

    def add_series_attributes(self, ds: Dataset) -> None:
        rows, columns = self.series.Rows, self.series.Columns
        add_image_pixel(
            ds,
            rows=rows,
            columns=columns,
            samples_per_pixel=3,
            photometric_interpretation="RGB",
            bits_allocated=8,
            bits_stored=8,
            signed=False,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
        ds.PatientOrientation = ""
        ds.BurnedInAnnotation = "YES"
        ds.TransducerData = ["C5-1", "", ""]
        ds.ProcessingFunction = "ABDOMEN GEN"
        ds.MechanicalIndex = "1.1"
        ds.SoftTissueThermalIndex = "0.4"
        ds.DepthOfScanField = 160
        region = Dataset()  # US Region Calibration: the B-mode sector, 160 mm deep
        region.RegionSpatialFormat = 1
        region.RegionDataType = 1
        region.RegionFlags = 0
        region.RegionLocationMinX0 = 0
        region.RegionLocationMinY0 = rows // 20
        region.RegionLocationMaxX1 = columns - 1 - max(2, columns // 40)
        region.RegionLocationMaxY1 = rows - 1 - rows // 20
        region.PhysicalUnitsXDirection = 3  # cm
        region.PhysicalUnitsYDirection = 3
        delta = 16.0 / rows
        region.PhysicalDeltaX = delta
        region.PhysicalDeltaY = delta
        region.ReferencePixelX0 = columns // 2
        region.ReferencePixelY0 = 0
        ds.SequenceOfUltrasoundRegions = Sequence([region])

    def add_instance(self, ds: Dataset, instance_number: int) -> np.ndarray:
        return pixels.ultrasound(self.series.Rows, self.series.Columns, self.rng)


class SCSource(SeriesSource):
    def add_series_attributes(self, ds: Dataset) -> None:
        add_image_pixel(
            ds,
            rows=self.series.Rows,
            columns=self.series.Columns,
            samples_per_pixel=3,
            photometric_interpretation="RGB",
            bits_allocated=8,
            bits_stored=8,
            signed=False,
        )
        ds.ConversionType = "WSD"
        ds.SecondaryCaptureDeviceManufacturer = "MEDFABRIC"
        ds.SecondaryCaptureDeviceManufacturerModelName = "SynthCapture"
        ds.SecondaryCaptureDeviceSoftwareVersions = "1.0"
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.PatientOrientation = ""
        ds.BurnedInAnnotation = "YES"
        ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = shifted_time(
            self.study.StudyDate, self.study.StudyTime, 900.0
        )

    def add_instance(self, ds: Dataset, instance_number: int) -> np.ndarray:
        return pixels.screen_capture(self.series.Rows, self.series.Columns, self.rng)


SOURCES: dict[str, type[SeriesSource]] = {
    "CT": CTSource,
    "MR": MRSource,
    "CR": CRSource,
    "US": USSource,
    "OT": SCSource,
}
